package snapshot_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/internal/snaptest"
)

// seqWalk is the walk without read-ahead: one tree at a time, depth first
// in name order. It lists every node as a line and counts distinct trees.
func seqWalk(t testing.TB, l *snapshot.TreeLoader, root repo.ID) (lines []string, trees map[repo.ID]bool) {
	t.Helper()
	trees = map[repo.ID]bool{}
	var rec func(id repo.ID, dir string)
	rec = func(id repo.ID, dir string) {
		trees[id] = true
		tr, err := l.Tree(context.Background(), id)
		snaptest.Must(t, err)
		for _, n := range snapshot.SortedNodes(tr) {
			p := snapshot.JoinPath(dir, n.Name)
			lines = append(lines, nodeLine(p, n))
			if n.Type == snapshot.NodeDir {
				rec(*n.Subtree, p)
			}
		}
	}
	rec(root, "/")
	return lines, trees
}

func nodeLine(p string, n *snapshot.Node) string {
	s := fmt.Sprintf("%s %s %d %v", p, n.Type, n.Size, n.Content)
	if n.Subtree != nil {
		s += " " + n.Subtree.Str()
	}
	return s
}

func walkLines(ctx context.Context, l *snapshot.TreeLoader, root repo.ID) ([]string, error) {
	var got []string
	err := snapshot.Walk(ctx, l, root, func(p string, n *snapshot.Node) error {
		got = append(got, nodeLine(p, n))
		return nil
	})
	return got, err
}

func TestWalkReadAhead(t *testing.T) {
	dir, _, sn := snaptest.ManyDirs(t, 300)
	want, trees := seqWalk(t, snapshot.NewTreeLoader(snaptest.OpenRepo(t, dir), 1), *sn.Tree)
	if len(trees) < 250 {
		t.Fatalf("only %d trees", len(trees))
	}

	r, slow := snaptest.OpenSlow(t, dir, time.Millisecond)
	slow.Reset()
	// A small LRU: read-ahead must not depend on it holding what it loads.
	got, err := walkLines(context.Background(), snapshot.NewTreeLoader(r, 8), *sn.Tree)
	snaptest.Must(t, err)
	if !slices.Equal(got, want) {
		t.Fatalf("walk with read-ahead: %d nodes, want %d (the same, in the same order)", len(got), len(want))
	}
	if slow.MaxInFlight() < 2 {
		t.Errorf("at most %d tree load in flight: nothing was read ahead", slow.MaxInFlight())
	}
	if slow.MaxInFlight() > snapshot.TreeLoadConcurrency+1 {
		t.Errorf("%d tree loads in flight, limit %d (+1 for the walk's own)", slow.MaxInFlight(), snapshot.TreeLoadConcurrency)
	}
	// Never more loads than the sequential walk makes with no cache at
	// all: one per directory.
	dirs := 1
	for _, line := range want {
		if strings.Fields(line)[1] == string(snapshot.NodeDir) {
			dirs++
		}
	}
	if slow.Loads() > dirs {
		t.Errorf("%d tree loads for %d directories", slow.Loads(), dirs)
	}

	// Identical directories share a tree: with room in the LRU, each
	// distinct tree is loaded once, read ahead or not.
	slow.Reset()
	got, err = walkLines(context.Background(), snapshot.NewTreeLoader(r, 4096), *sn.Tree)
	snaptest.Must(t, err)
	if !slices.Equal(got, want) {
		t.Fatalf("walk with read-ahead: %d nodes, want %d (the same, in the same order)", len(got), len(want))
	}
	if slow.Loads() != len(trees) {
		t.Errorf("%d tree loads for %d distinct trees", slow.Loads(), len(trees))
	}
}

// A walk that never descends (ls of one directory) loads only its tree.
func TestWalkShallowLoadsOneTree(t *testing.T) {
	dir, _, sn := snaptest.ManyDirs(t, 100)
	r, slow := snaptest.OpenSlow(t, dir, 0)
	slow.Reset()
	n := 0
	snaptest.Must(t, snapshot.Walk(context.Background(), snapshot.NewTreeLoader(r, 64), *sn.Tree, func(p string, node *snapshot.Node) error {
		n++
		return snapshot.ErrSkipDir
	}))
	if n != 1 || slow.Loads() != 1 {
		t.Errorf("shallow walk: %d nodes, %d tree loads; want 1 and 1", n, slow.Loads())
	}
}

// A tree that fails to load in the background is reported by the walk at
// its place, as a direct load reports it, and the rest goes on.
func TestWalkReadAheadDamaged(t *testing.T) {
	ctx := context.Background()
	dir, _, sn := snaptest.ManyDirs(t, 200)
	want, _ := seqWalk(t, snapshot.NewTreeLoader(snaptest.OpenRepo(t, dir), 1), *sn.Tree)

	// A directory late in the walk, whose tree no other directory shares:
	// read ahead long before the walk gets there.
	r, slow := snaptest.OpenSlow(t, dir, time.Millisecond)
	uses := map[repo.ID][]string{}
	snaptest.Must(t, snapshot.Walk(ctx, snapshot.NewTreeLoader(r, 1024), *sn.Tree, func(p string, n *snapshot.Node) error {
		if n.Type == snapshot.NodeDir {
			uses[*n.Subtree] = append(uses[*n.Subtree], p)
		}
		return nil
	}))
	var badPath string
	var badID repo.ID
	for _, line := range want[len(want)*2/3:] {
		p := strings.Fields(line)[0]
		for id, ps := range uses {
			if len(ps) == 1 && ps[0] == p {
				badPath, badID = p, id
			}
		}
		if badPath != "" {
			break
		}
	}
	if badPath == "" {
		t.Fatal("no directory to damage")
	}
	loc := r.LookupBlob(repo.TreeBlob, badID)[0]
	slow.Fail = func(h repo.Handle, off int64) error {
		if h.Name == loc.Pack.String() && off == int64(loc.Offset) {
			return errors.New("injected read error")
		}
		return nil
	}
	_, direct := snapshot.LoadTree(ctx, r, badID)
	if direct == nil {
		t.Fatal("injected error not seen")
	}
	var wantRest []string
	for _, line := range want {
		if !strings.HasPrefix(line, badPath+"/") {
			wantRest = append(wantRest, line)
		}
	}

	for _, lru := range []int{1, 4096} {
		slow.Reset()
		var got, reports []string
		err := snapshot.WalkDamaged(ctx, snapshot.NewTreeLoader(r, lru), *sn.Tree, func(p string, n *snapshot.Node) error {
			got = append(got, nodeLine(p, n))
			return nil
		}, func(p string, err error) error {
			reports = append(reports, p+": "+err.Error())
			return nil
		})
		snaptest.Must(t, err)
		if w := badPath + ": " + direct.Error(); !slices.Equal(reports, []string{w}) {
			t.Errorf("damaged reports %q, want %q", reports, w)
		}
		if !slices.Equal(got, wantRest) {
			t.Errorf("damaged walk: %d nodes, want the %d outside %s", len(got), len(wantRest), badPath)
		}
		if slow.MaxInFlight() < 2 {
			t.Errorf("nothing read ahead (max %d in flight)", slow.MaxInFlight())
		}

		err = snapshot.Walk(ctx, snapshot.NewTreeLoader(r, lru), *sn.Tree, func(string, *snapshot.Node) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "walk "+badPath+": ") || !strings.Contains(err.Error(), "injected read error") {
			t.Errorf("walk over the damaged tree: %v", err)
		}
	}
}

// Ending a walk (cancellation, or an error from its callback) stops the
// loads it started: none is in flight once Walk returns.
func TestWalkReadAheadStops(t *testing.T) {
	dir, _, sn := snaptest.ManyDirs(t, 300)
	r, slow := snaptest.OpenSlow(t, dir, 20*time.Millisecond)
	before := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := snapshot.Walk(ctx, snapshot.NewTreeLoader(r, 64), *sn.Tree, func(p string, node *snapshot.Node) error {
		if n++; n == 50 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled walk: %v", err)
	}
	if slow.InFlight() != 0 {
		t.Errorf("%d loads still in flight after the walk returned", slow.InFlight())
	}

	stop := errors.New("stop")
	n = 0
	err = snapshot.Walk(context.Background(), snapshot.NewTreeLoader(r, 64), *sn.Tree, func(p string, node *snapshot.Node) error {
		if n++; n == 50 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("stopped walk: %v", err)
	}
	if slow.InFlight() != 0 {
		t.Errorf("%d loads still in flight after the walk returned", slow.InFlight())
	}
	// Goroutines of the runtime (timers) may take a moment to go.
	for i := 0; i < 100 && runtime.NumGoroutine() > before; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Errorf("%d goroutines after the walks, %d before", g, before)
	}
}

// Callers asking for a tree being loaded wait for that load; a load given
// up by its caller does not fail the others.
func TestTreeLoaderSharesLoads(t *testing.T) {
	dir, _, sn := snaptest.ManyDirs(t, 10)
	r, slow := snaptest.OpenSlow(t, dir, 20*time.Millisecond)
	l := snapshot.NewTreeLoader(r, 16)
	slow.Reset()
	var wg sync.WaitGroup
	trees := make([]*snapshot.Tree, 8)
	for i := range trees {
		wg.Go(func() {
			tr, err := l.Tree(context.Background(), *sn.Tree)
			if err != nil {
				t.Error(err)
			}
			trees[i] = tr
		})
	}
	wg.Wait()
	if slow.Loads() != 1 {
		t.Errorf("%d loads of one tree by 8 callers", slow.Loads())
	}
	for _, tr := range trees {
		if tr != trees[0] || tr == nil {
			t.Fatal("callers got different trees")
		}
	}

	// The first caller gives up while a second waits for its load. On a
	// loaded machine the 20 ms load may end before this goroutine sees it
	// in flight: then try again with a fresh loader.
	var first, second chan error
	var cancel context.CancelFunc
	for attempt := 0; ; attempt++ {
		if attempt == 50 {
			t.Fatal("never saw the first caller's load in flight")
		}
		l = snapshot.NewTreeLoader(r, 16)
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		first = make(chan error, 1)
		go func() {
			_, err := l.Tree(ctx, *sn.Tree)
			first <- err
		}()
		for slow.InFlight() == 0 && len(first) == 0 {
			time.Sleep(time.Millisecond)
		}
		if len(first) == 0 {
			break
		}
		<-first
		cancel()
	}
	second = make(chan error, 1)
	go func() {
		_, err := l.Tree(context.Background(), *sn.Tree)
		second <- err
	}()
	time.Sleep(5 * time.Millisecond) // most likely waiting by now; either way it must succeed
	cancel()
	if err := <-first; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v", err)
	}
	if err := <-second; err != nil {
		t.Errorf("second caller failed with the first one's cancellation: %v", err)
	}
}
