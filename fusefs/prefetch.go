package fusefs

import (
	"bytes"
	"cmp"
	"context"
	"runtime"
	"slices"
	"sort"
	"sync"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// Directory walks (find, ls -R, du, cp -r) look up every subdirectory of a
// directory they list, one after the other, and a lookup of a directory
// needs its tree (for its link count). Loading trees is what such a walk
// waits for, so the trees of the subdirectories a walk is about to enter
// are loaded in the background. Over a network each backend read costs a
// round trip: the queued trees are loaded in batches, those of a batch that
// lie close together in one pack with one ranged read (repo.LoadBlobRun).

// treePrefetchWindow is how many subdirectories, from the start of a
// listing or after the one looked up, get their trees loaded ahead. A
// lookup queues more only once half the window is new, so that trees are
// queued (and read) in batches rather than one per lookup.
const treePrefetchWindow = 256

// maxTreeQueue bounds the trees waiting to be loaded ahead.
const maxTreeQueue = 1024

// maxTreeScan bounds the entries one call looks through for
// subdirectories (a directory may hold very many files and few of them).
const maxTreeScan = 4096

// maxTreeRecent bounds the set of trees recently queued, which keeps the
// sliding window from queueing the same trees again and again, and the
// trees loaded ahead and kept until a lookup asks for them.
const maxTreeRecent = 4096

// treeBatch is the most queued trees one worker takes at once; maxTreeRun
// bounds the stored bytes of one read of a run of them.
const (
	treeBatch  = 64
	maxTreeRun = 4 << 20
)

// treeWorkers is how many batches load at once: loads wait on the network
// more than on the CPU, so more than there are cores.
func treeWorkers() int { return max(runtime.GOMAXPROCS(0), 8) }

type treePrefetcher struct {
	mu      sync.Mutex
	queue   []repo.ID // oldest first
	recent  map[repo.ID]struct{}
	workers int
}

// loadedTrees holds trees loaded ahead, until FS.tree hands them out (and
// a little longer), up to maxTreeRecent, oldest dropped first. Guarded by
// FS.treeMu.
type loadedTrees struct {
	trees map[repo.ID]*snapshot.Tree
	order []repo.ID
}

func (l *loadedTrees) add(id repo.ID, t *snapshot.Tree) {
	if l.trees == nil {
		l.trees = map[repo.ID]*snapshot.Tree{}
	}
	if _, ok := l.trees[id]; ok {
		return
	}
	if len(l.order) >= maxTreeRecent {
		delete(l.trees, l.order[0])
		l.order[0] = repo.ID{}
		l.order = l.order[1:]
	}
	l.trees[id] = t
	l.order = append(l.order, id)
}

// prefetchSubtrees queues the trees of up to treePrefetchWindow
// subdirectories of t, starting at t.Nodes[from]. A lookup (from > 0)
// whose next sibling is queued already waits until half the window is new.
func (f *FS) prefetchSubtrees(t *snapshot.Tree, from int) {
	p := &f.prefetch
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.recent == nil {
		p.recent = map[repo.ID]struct{}{}
	}
	var fresh []repo.ID
	seen, nextQueued := 0, false
	for i := from; i < len(t.Nodes) && i < from+maxTreeScan && seen < treePrefetchWindow; i++ {
		n := t.Nodes[i]
		if n.Type != snapshot.NodeDir || n.Subtree == nil {
			continue
		}
		id := *n.Subtree
		_, queued := p.recent[id]
		if seen == 0 {
			nextQueued = queued
		}
		seen++
		if !queued && !slices.Contains(fresh, id) {
			fresh = append(fresh, id)
		}
	}
	if from > 0 && nextQueued && len(fresh) < treePrefetchWindow/2 {
		return
	}
	for _, id := range fresh {
		if len(p.queue) >= maxTreeQueue {
			break
		}
		if len(p.recent) >= maxTreeRecent {
			clear(p.recent)
		}
		p.recent[id] = struct{}{}
		p.queue = append(p.queue, id)
	}
	for p.workers < treeWorkers() && p.workers*treeBatch < len(p.queue) {
		p.workers++
		go f.treeWorker()
	}
}

// treeWorker loads batches of queued trees until the queue is empty.
func (f *FS) treeWorker() {
	p := &f.prefetch
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.workers--
			p.mu.Unlock()
			return
		}
		n := min(len(p.queue), treeBatch)
		batch := slices.Clone(p.queue[:n])
		clear(p.queue[:n])
		p.queue = p.queue[n:]
		p.mu.Unlock()
		f.loadTrees(batch)
	}
}

// loadTrees loads the trees ids that are neither loaded ahead nor loading,
// in runs of one pack. A tree that fails to load or decode is left to the
// lookup that needs it, which loads it again and reports the error.
func (f *FS) loadTrees(ids []repo.ID) {
	type item struct {
		id repo.ID
		pb repo.PackedBlob
		ch chan struct{}
	}
	var items []item
	f.treeMu.Lock()
	for _, id := range ids {
		if _, ok := f.ahead.trees[id]; ok {
			continue
		}
		if _, ok := f.treeLoads[id]; ok {
			continue
		}
		locs := f.r.LookupBlob(repo.TreeBlob, id)
		if len(locs) == 0 {
			continue // the lookup reports it
		}
		ch := make(chan struct{})
		f.treeLoads[id] = ch
		items = append(items, item{id, locs[0], ch})
	}
	f.treeMu.Unlock()
	slices.SortFunc(items, func(a, b item) int {
		if c := bytes.Compare(a.pb.Pack[:], b.pb.Pack[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.pb.Offset, b.pb.Offset)
	})
	for len(items) > 0 {
		n := 1
		for n < len(items) {
			prev, first, pb := items[n-1].pb, items[0].pb, items[n].pb
			prevEnd := uint64(prev.Offset) + uint64(prev.Length)
			if pb.Pack != first.Pack || uint64(pb.Offset) < prevEnd || uint64(pb.Offset)-prevEnd > repo.MaxRunGap ||
				uint64(pb.Offset)+uint64(pb.Length)-uint64(first.Offset) > maxTreeRun {
				break
			}
			n++
		}
		run := items[:n]
		items = items[n:]
		locs := make([]repo.PackedBlob, len(run))
		for k, it := range run {
			locs[k] = it.pb
		}
		f.r.LoadBlobRun(context.Background(), locs, make([][]byte, len(run)), func(k int, plain []byte, err error) {
			var t *snapshot.Tree
			if err == nil {
				t, err = snapshot.DecodeTree(plain)
			}
			f.treeMu.Lock()
			if err == nil {
				f.ahead.add(run[k].id, t)
			}
			delete(f.treeLoads, run[k].id)
			f.treeMu.Unlock()
			close(run[k].ch)
		})
	}
}

// prefetchAfter queues the trees of the subdirectories after n in t (n is
// a directory just looked up: a walk goes on with its next siblings).
func (f *FS) prefetchAfter(t *snapshot.Tree, n *snapshot.Node) {
	i := sort.Search(len(t.Nodes), func(i int) bool { return t.Nodes[i].Name >= n.Name })
	if i < len(t.Nodes) && t.Nodes[i] == n {
		f.prefetchSubtrees(t, i+1)
	}
}
