package snapshot

import (
	"container/heap"
	"context"
	"strings"
	"sync"

	"github.com/cairn-backup/cairn/repo"
)

// TreeLoadConcurrency is how many trees are loaded at once in the
// background, across the whole process, and how many workers walks that
// visit every tree (check, prune) use. Over a network each tree costs a
// round trip; this many in flight hide most of it.
const TreeLoadConcurrency = 32

// readAheadWindow and readAheadBytes (stored size) bound the trees a
// read-ahead holds for its walk (loading or loaded, not yet asked for), so
// memory stays bounded however large the snapshot. The window must be wide:
// while the walk waits on a chain of nested directories, one round trip per
// level, the loads in flight run ahead into the directories after it.
const (
	readAheadWindow = 16 * TreeLoadConcurrency
	readAheadBytes  = 32 << 20
)

// prefetchSlots is shared by every read-ahead of the process.
var prefetchSlots = make(chan struct{}, TreeLoadConcurrency)

// ReadAhead loads the trees a depth-first walk will ask for before it asks.
// The walk names each directory by its slash path and must ask for them in
// depth-first name order (the order of Walk, of the archiver and of a
// restore): a tree is wanted before everything below it, and the trees of
// a directory's subdirectories in name order. Trees the walk passed without
// asking for them (a skipped directory) are dropped.
//
// With want set, every tree loaded queues the trees of its subdirectories
// that want accepts (the walk will enter them), which are loaded,
// TreeLoadConcurrency at a time, nearest-first; read-ahead starts with the
// walk's second tree, so a walk that never descends (ls of one directory)
// loads nothing extra. With want nil, only trees given to Hint are loaded
// ahead. want is called from other goroutines than the walk's.
//
// A tree that fails to load in the background is not an error there: Tree
// returns the error when the walk asks for it, as a direct load would.
// Close stops the background loads and waits for them.
type ReadAhead struct {
	l      *TreeLoader
	ctx    context.Context
	cancel context.CancelFunc
	want   func(p string, n *Node) bool
	wg     sync.WaitGroup
	limit  int // most trees in window

	mu      sync.Mutex
	pos     string             // key of the tree asked for last
	todo    raQueue            // known, not started, nearest first
	window  map[string]*raItem // started and not yet asked for or passed
	started raQueue            // window's items by key (and some that left it)
	wbytes  int64              // stored size of the trees in window
	running int                // background loads in flight
	first   *raItem            // the walk's first tree, until read-ahead starts
	active  bool               // read-ahead started
	closed  bool
}

type raItem struct {
	key  string // raKey(dir)
	dir  string
	id   repo.ID
	size int64
	done chan struct{} // closed when tree or err is set
	tree *Tree
	err  error
	// queued: its subdirectories are queued (ra.mu), by whoever had the
	// tree first: the background load while it was in the window, or Tree.
	queued bool
}

// ReadAhead starts a read-ahead for one walk through l; ctx bounds its
// background loads. The caller must Close it.
func (l *TreeLoader) ReadAhead(ctx context.Context, want func(p string, n *Node) bool) *ReadAhead {
	ctx, cancel := context.WithCancel(ctx)
	return &ReadAhead{l: l, ctx: ctx, cancel: cancel, want: want, window: map[string]*raItem{}, limit: readAheadWindow}
}

// Limit lowers the number of trees held ahead of the walk to n (at least
// TreeLoadConcurrency, so as many loads as ever are in flight), for a walk
// that spends little time on each tree and would rather hold less memory.
// Call it before the first Tree.
func (ra *ReadAhead) Limit(n int) {
	ra.mu.Lock()
	ra.limit = min(max(n, TreeLoadConcurrency), readAheadWindow)
	ra.mu.Unlock()
}

// EveryDir, as ReadAhead's want, reads ahead every subdirectory.
func EveryDir(string, *Node) bool { return true }

// raKey maps a slash path to a key whose string order is depth-first name
// order: a directory before its children, children by name (a NUL
// separator sorts before every byte a name can hold).
func raKey(p string) string {
	if p == "/" || p == "" {
		return ""
	}
	return strings.ReplaceAll(p, "/", "\x00")
}

// Tree returns the tree id of directory dir, from the read-ahead when it
// was loaded (or is loading) ahead, else directly.
func (ra *ReadAhead) Tree(ctx context.Context, dir string, id repo.ID) (*Tree, error) {
	key := raKey(dir)
	ra.mu.Lock()
	if key < ra.pos {
		// Out of order (a tree stored unsorted): the walk's position stays,
		// this one is simply loaded.
		ra.mu.Unlock()
		return ra.l.Tree(ctx, id)
	}
	ra.pos = key
	for len(ra.started) > 0 && ra.started[0].key < key {
		if it := heap.Pop(&ra.started).(*raItem); ra.window[it.key] == it {
			ra.drop(it) // passed; a load in flight finishes unused
		}
	}
	for len(ra.todo) > 0 && ra.todo[0].key <= key {
		heap.Pop(&ra.todo)
	}
	it := ra.window[key]
	if it != nil {
		ra.drop(it)
	}
	ra.mu.Unlock()

	var t *Tree
	var err error
	if it != nil && it.id == id {
		select {
		case <-it.done:
			t, err = it.tree, it.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if err != nil && ra.ctx.Err() != nil && ctx.Err() == nil {
			t, err = ra.l.Tree(ctx, id) // ended by Close, not by the tree
		}
	} else {
		t, err = ra.l.Tree(ctx, id)
	}
	if err != nil {
		return nil, err
	}

	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.want != nil && !ra.closed && (it == nil || it.id != id || !it.queued) {
		switch {
		case ra.active:
			ra.queueChildren(dir, t)
		case ra.first == nil:
			ra.first = &raItem{dir: dir, tree: t}
		default:
			ra.active = true
			ra.queueChildren(ra.first.dir, ra.first.tree)
			ra.first = nil
			ra.queueChildren(dir, t)
		}
	}
	ra.fill()
	return t, nil
}

// Hint queues tree id of directory dir for loading ahead.
func (ra *ReadAhead) Hint(dir string, id repo.ID) {
	key := raKey(dir)
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if key <= ra.pos || ra.closed {
		return
	}
	heap.Push(&ra.todo, &raItem{key: key, dir: dir, id: id})
	ra.fill()
}

// Close stops the background loads, waits for them and drops what they
// loaded.
func (ra *ReadAhead) Close() {
	ra.mu.Lock()
	ra.closed = true
	ra.todo, ra.started, ra.window, ra.first = nil, nil, nil, nil
	ra.mu.Unlock()
	ra.cancel()
	ra.wg.Wait()
}

// drop removes it from the window (ra.mu held).
func (ra *ReadAhead) drop(it *raItem) {
	delete(ra.window, it.key)
	ra.wbytes -= it.size
}

// queueChildren queues the trees of the subdirectories of t, the tree of
// directory dir, that the walk wants (ra.mu held).
func (ra *ReadAhead) queueChildren(dir string, t *Tree) {
	key := raKey(dir)
	for _, n := range t.Nodes {
		if n.Type != NodeDir || n.Subtree == nil {
			continue
		}
		p := JoinPath(dir, n.Name)
		if ra.want(p, n) {
			heap.Push(&ra.todo, &raItem{key: key + "\x00" + n.Name, dir: p, id: *n.Subtree})
		}
	}
}

// fill starts loads, nearest first, while the window has room (ra.mu held).
func (ra *ReadAhead) fill() {
	for !ra.closed && len(ra.todo) > 0 && ra.running < TreeLoadConcurrency &&
		len(ra.window) < ra.limit && ra.wbytes < readAheadBytes {
		it := heap.Pop(&ra.todo).(*raItem)
		if _, dup := ra.window[it.key]; dup {
			continue // a repeated name in a damaged tree
		}
		it.done = make(chan struct{})
		if locs := ra.l.r.LookupBlob(repo.TreeBlob, it.id); len(locs) > 0 {
			it.size = int64(locs[0].Length)
		}
		ra.window[it.key] = it
		heap.Push(&ra.started, it)
		ra.wbytes += it.size
		if t := ra.l.cached(it.id); t != nil {
			it.tree = t
			close(it.done)
			if ra.want != nil {
				ra.queueChildren(it.dir, t)
				it.queued = true
			}
			continue
		}
		ra.running++
		ra.wg.Go(func() { ra.load(it) })
	}
}

func (ra *ReadAhead) load(it *raItem) {
	select {
	case prefetchSlots <- struct{}{}:
		it.tree, it.err = ra.l.Tree(ra.ctx, it.id)
		<-prefetchSlots
	case <-ra.ctx.Done():
		it.err = ra.ctx.Err()
	}
	close(it.done)
	ra.mu.Lock()
	defer ra.mu.Unlock()
	ra.running--
	if it.err == nil && ra.want != nil && ra.window[it.key] == it {
		ra.queueChildren(it.dir, it.tree)
		it.queued = true
	}
	ra.fill()
}

// raQueue is a min-heap of items by key.
type raQueue []*raItem

func (q raQueue) Len() int           { return len(q) }
func (q raQueue) Less(i, j int) bool { return q[i].key < q[j].key }
func (q raQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *raQueue) Push(x any)        { *q = append(*q, x.(*raItem)) }
func (q *raQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return it
}
