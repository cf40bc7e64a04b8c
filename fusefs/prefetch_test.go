package fusefs

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// TestTreePrefetchWindow: a listing queues the first subdirectories'
// trees, a lookup the ones after it, each once; the workers end when the
// queue is empty (loads that fail are left to the lookups to report).
func TestTreePrefetchWindow(t *testing.T) {
	r, _ := newRepo(t)
	f := &FS{r: r, loader: snapshot.NewTreeLoader(r, 16), treeLoads: map[repo.ID]chan struct{}{}}
	tree := &snapshot.Tree{}
	ids := map[string]repo.ID{}
	for i := range 200 {
		name := fmt.Sprintf("e%03d", i)
		n := &snapshot.Node{Name: name, Type: snapshot.NodeFile}
		if i%2 == 0 { // every other entry is a directory
			id := repo.Hash([]byte(name)) // not stored: its load fails
			n.Type, n.Subtree = snapshot.NodeDir, &id
			ids[name] = id
		}
		tree.Nodes = append(tree.Nodes, n)
	}
	queued := func() int {
		f.prefetch.mu.Lock()
		defer f.prefetch.mu.Unlock()
		return len(f.prefetch.recent)
	}
	idle := func() {
		t.Helper()
		for i := 0; i < 500; i++ {
			f.prefetch.mu.Lock()
			w, q := f.prefetch.workers, len(f.prefetch.queue)
			f.prefetch.mu.Unlock()
			if w > runtime.GOMAXPROCS(0) {
				t.Fatalf("%d workers", w)
			}
			if w == 0 && q == 0 {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatal("prefetch workers did not end")
	}

	f.prefetchSubtrees(tree, 0)
	if n := queued(); n != treePrefetchWindow {
		t.Fatalf("a listing queued %d trees, want %d", n, treePrefetchWindow)
	}
	idle()
	f.prefetchSubtrees(tree, 0) // listed again: nothing new
	if n := queued(); n != treePrefetchWindow {
		t.Fatalf("listing again queued %d trees in all, want %d", n, treePrefetchWindow)
	}
	// Looking up the 11th directory (e020) moves the window to the 32
	// after it: up to the 43rd (e084), not the 44th (e086).
	f.prefetchAfter(tree, tree.Find("e020"))
	if n := queued(); n != treePrefetchWindow+11 {
		t.Fatalf("after a lookup %d trees queued in all, want %d", n, treePrefetchWindow+11)
	}
	f.prefetch.mu.Lock()
	_, last := f.prefetch.recent[ids["e084"]]
	_, beyond := f.prefetch.recent[ids["e086"]]
	f.prefetch.mu.Unlock()
	if !last || beyond {
		t.Fatalf("window end: e084 queued %v, e086 queued %v", last, beyond)
	}
	idle()
	// The failed loads left nothing behind.
	f.treeMu.Lock()
	n := len(f.treeLoads)
	f.treeMu.Unlock()
	if n != 0 {
		t.Fatalf("%d tree loads left", n)
	}
	if _, err := f.tree(context.Background(), ids["e000"]); err == nil {
		t.Fatal("loading a tree that is not stored succeeded")
	}
}
