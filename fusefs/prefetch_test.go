package fusefs

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
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
	const W = treePrefetchWindow
	dirName := func(k int) string { return fmt.Sprintf("e%04d", 2*k) } // the k-th directory
	for i := range 4 * 2 * W {
		name := fmt.Sprintf("e%04d", i)
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
			if w > treeWorkers() {
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
	// Looking up the 11th directory brings 11 new ones into the window:
	// fewer than half of it, so nothing is queued yet.
	f.prefetchAfter(tree, tree.Find(dirName(10)))
	if n := queued(); n != W {
		t.Fatalf("after a lookup %d trees queued in all, want still %d", n, W)
	}
	// Looking up the (W/2)-th makes half the window new: the W/2 after the
	// first window are queued, and no more.
	f.prefetchAfter(tree, tree.Find(dirName(W/2-1)))
	if n := queued(); n != W+W/2 {
		t.Fatalf("after a lookup %d trees queued in all, want %d", n, W+W/2)
	}
	f.prefetch.mu.Lock()
	_, last := f.prefetch.recent[ids[dirName(W+W/2-1)]]
	_, beyond := f.prefetch.recent[ids[dirName(W+W/2)]]
	f.prefetch.mu.Unlock()
	if !last || beyond {
		t.Fatalf("window end: directory %d queued %v, %d queued %v", W+W/2-1, last, W+W/2, beyond)
	}
	idle()
	// The failed loads left nothing behind.
	f.treeMu.Lock()
	n := len(f.treeLoads)
	f.treeMu.Unlock()
	if n != 0 {
		t.Fatalf("%d tree loads left", n)
	}
	if _, err := f.tree(context.Background(), ids[dirName(0)]); err == nil {
		t.Fatal("loading a tree that is not stored succeeded")
	}
}

// countPackLoads counts the backend reads of pack files.
type countPackLoads struct {
	repo.Backend
	n atomic.Int32
}

func (b *countPackLoads) Load(ctx context.Context, h repo.Handle, length int, offset int64) (io.ReadCloser, error) {
	if h.Type == repo.PackFile {
		b.n.Add(1)
	}
	return b.Backend.Load(ctx, h, length, offset)
}

// TestTreePrefetchBatches: the trees of a listing's subdirectories load in
// runs of one pack (fewer backend reads than trees) and lookups then get
// them without reading the backend again.
func TestTreePrefetchBatches(t *testing.T) {
	w, dir := newRepo(t)
	ctx := context.Background()
	root := &snapshot.Tree{}
	for i := range 40 {
		sub := &snapshot.Tree{Nodes: []*snapshot.Node{{Name: fmt.Sprintf("file-%d", i), Type: snapshot.NodeFile}}}
		id, err := snapshot.SaveTree(ctx, w, sub)
		if err != nil {
			t.Fatal(err)
		}
		root.Nodes = append(root.Nodes, &snapshot.Node{Name: fmt.Sprintf("d%02d", i), Type: snapshot.NodeDir, Subtree: &id})
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	be, err := repo.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	cb := &countPackLoads{Backend: be}
	r, err := repo.Open(ctx, cb, testPassword, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	f := &FS{r: r, loader: snapshot.NewTreeLoader(r, 16), treeLoads: map[repo.ID]chan struct{}{}}
	f.prefetchSubtrees(root, 0)
	for i := 0; ; i++ {
		f.prefetch.mu.Lock()
		w, q := f.prefetch.workers, len(f.prefetch.queue)
		f.prefetch.mu.Unlock()
		if w == 0 && q == 0 {
			break
		}
		if i > 1000 {
			t.Fatal("prefetch workers did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
	loads := cb.n.Load()
	t.Logf("40 trees, %d backend reads", loads)
	if loads == 0 || loads*4 > 40 {
		t.Errorf("40 trees took %d backend reads, want a few runs", loads)
	}
	for i, n := range root.Nodes {
		sub, err := f.tree(ctx, *n.Subtree)
		if err != nil || len(sub.Nodes) != 1 || sub.Nodes[0].Name != fmt.Sprintf("file-%d", i) {
			t.Fatalf("tree of %s: %v", n.Name, err)
		}
	}
	if now := cb.n.Load(); now != loads {
		t.Errorf("lookups read the backend %d more times, want the trees loaded ahead", now-loads)
	}
}
