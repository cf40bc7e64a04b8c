package fusefs

import (
	"context"
	"runtime"
	"sort"
	"sync"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// Directory walks (find, ls -R, du, cp -r) look up every subdirectory of a
// directory they list, one after the other, and a lookup of a directory
// needs its tree (for its link count). Decoding trees is what such a walk
// waits for, so the trees of the subdirectories a walk is about to enter
// are loaded in the background, on all cores.

// treePrefetchWindow is how many subdirectories, from the start of a
// listing or after the one looked up, get their trees loaded ahead.
const treePrefetchWindow = 32

// maxTreeQueue bounds the trees waiting to be loaded ahead.
const maxTreeQueue = 1024

// maxTreeScan bounds the entries one call looks through for
// subdirectories (a directory may hold very many files and few of them).
const maxTreeScan = 4096

// maxTreeRecent bounds the set of trees recently queued, which keeps the
// sliding window from queueing the same trees again and again.
const maxTreeRecent = 4096

type treePrefetcher struct {
	mu      sync.Mutex
	queue   []repo.ID // oldest first
	recent  map[repo.ID]struct{}
	workers int
}

// prefetchSubtrees queues the trees of up to treePrefetchWindow
// subdirectories of t, starting at t.Nodes[from].
func (f *FS) prefetchSubtrees(t *snapshot.Tree, from int) {
	p := &f.prefetch
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.recent == nil {
		p.recent = map[repo.ID]struct{}{}
	}
	seen := 0
	for i := from; i < len(t.Nodes) && i < from+maxTreeScan && seen < treePrefetchWindow; i++ {
		n := t.Nodes[i]
		if n.Type != snapshot.NodeDir || n.Subtree == nil {
			continue
		}
		seen++
		id := *n.Subtree
		if _, ok := p.recent[id]; ok {
			continue
		}
		if len(p.queue) >= maxTreeQueue {
			break
		}
		if len(p.recent) >= maxTreeRecent {
			clear(p.recent)
		}
		p.recent[id] = struct{}{}
		p.queue = append(p.queue, id)
	}
	for p.workers < runtime.GOMAXPROCS(0) && p.workers < len(p.queue) {
		p.workers++
		go f.treeWorker()
	}
}

// treeWorker loads queued trees until the queue is empty.
func (f *FS) treeWorker() {
	p := &f.prefetch
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.workers--
			p.mu.Unlock()
			return
		}
		id := p.queue[0]
		p.queue[0] = repo.ID{}
		p.queue = p.queue[1:]
		p.mu.Unlock()
		// An error is reported by the lookup that needs the tree.
		_, _ = f.tree(context.Background(), id)
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
