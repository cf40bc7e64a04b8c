package repo

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// pruneFixture writes 40 data blobs and 6 tree blobs into several packs and
// returns the directory and the blobs that count as used: two thirds of the
// data and half of the trees, spread over every pack.
func pruneFixture(t *testing.T) (string, map[BlobHandle]struct{}, []BlobHandle) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	be, err := CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Init(ctx, be, "secret", 2, Options{KDF: testKDF, PackSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	used := map[BlobHandle]struct{}{}
	var unused []BlobHandle
	for i := 0; i < 40; i++ {
		b := make([]byte, 50_000)
		for j := range b {
			b[j] = byte(rng.Uint32())
			if i%4 == 1 {
				b[j] = byte(i + j%13) // compressible: stored compressed
			}
		}
		id, _, _, err := r.SaveBlob(ctx, DataBlob, b, ID{})
		if err != nil {
			t.Fatal(err)
		}
		h := BlobHandle{ID: id, Type: DataBlob}
		if i%3 == 0 {
			unused = append(unused, h)
		} else {
			used[h] = struct{}{}
		}
		if i == 20 { // two flushes: two index files
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; i < 6; i++ {
		tree := []byte(`{"nodes":[{"name":"f` + string(rune('a'+i)) + `","type":"file","content":[]}]}` + "\n")
		id, _, _, err := r.SaveBlob(ctx, TreeBlob, tree, ID{})
		if err != nil {
			t.Fatal(err)
		}
		h := BlobHandle{ID: id, Type: TreeBlob}
		if i%2 == 0 {
			used[h] = struct{}{}
		} else {
			unused = append(unused, h)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return dir, used, unused
}

// failingBackend simulates a process killed after a number of writes and
// deletions: from then on every write and deletion fails.
type failingBackend struct {
	Backend
	mu    sync.Mutex
	left  int
	ops   int
	limit bool
}

var errKilled = errors.New("killed")

func (b *failingBackend) step() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops++
	if !b.limit {
		return nil
	}
	if b.left == 0 {
		return errKilled
	}
	b.left--
	return nil
}

func (b *failingBackend) Save(ctx context.Context, h Handle, rd io.Reader, size int64) error {
	if err := b.step(); err != nil {
		return err
	}
	return b.Backend.Save(ctx, h, rd, size)
}

func (b *failingBackend) Remove(ctx context.Context, h Handle) error {
	if err := b.step(); err != nil {
		return err
	}
	return b.Backend.Remove(ctx, h)
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if de.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		buf, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, buf, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// runPrune plans and carries out a prune that repacks everything partly
// used, on a backend that may fail.
func runPrune(t *testing.T, be Backend, used map[BlobHandle]struct{}) (*PrunePlan, error) {
	t.Helper()
	ctx := context.Background()
	r, err := Open(ctx, be, "secret", Options{PackSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.LoadPruneState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := PlanPrune(st.Input(used), PruneOptions{MaxUnused: UnusedLimit{}, MaxRepackSize: -1, PackSize: r.PackSize()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Prune(ctx, st, plan, used, nil)
	return plan, err
}

// assertIntact checks that every used blob loads and verifies and that the
// checker finds no error (unused data is allowed).
func assertIntact(t *testing.T, dir string, used map[BlobHandle]struct{}, readData bool) *problems {
	t.Helper()
	ctx := context.Background()
	r := reopen(t, dir)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	for h := range used {
		if _, err := r.LoadBlob(ctx, h.Type, h.ID, nil); err != nil {
			t.Fatalf("used %v: %v", h, err)
		}
	}
	p, _ := runChecker(t, dir, readData)
	if len(p.errors) > 0 {
		t.Fatalf("check errors: %q", p.errors)
	}
	return p
}

func TestPruneRepacks(t *testing.T) {
	ctx := context.Background()
	dir, used, unused := pruneFixture(t)
	before := reopen(t, dir)
	var oldIndex []ID
	before.List(ctx, IndexFile, func(id ID, _ int64) error { oldIndex = append(oldIndex, id); return nil })
	be, _ := OpenLocal(dir)
	plan, err := runPrune(t, be, used)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Stats.RepackPacks == 0 || len(plan.Copy) == 0 || plan.Stats.UnusedAfter != 0 {
		t.Fatalf("plan repacks nothing: %+v", plan.Stats)
	}
	p := assertIntact(t, dir, used, true)
	if len(p.warns) > 0 {
		t.Errorf("warnings after a full prune: %q", p.warns)
	}
	r := reopen(t, dir)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	for _, h := range unused {
		if r.HasBlob(h.Type, h.ID) {
			t.Errorf("unused %v still indexed", h)
		}
	}
	if r.Index().Len() != len(used) {
		t.Errorf("index has %d entries, want %d (one per used blob)", r.Index().Len(), len(used))
	}
	// The old index files are gone, and the new one says it supersedes them.
	var newIndex []ID
	r.List(ctx, IndexFile, func(id ID, _ int64) error { newIndex = append(newIndex, id); return nil })
	if len(newIndex) != 1 {
		t.Fatalf("%d index files after prune", len(newIndex))
	}
	buf, err := r.LoadUnpacked(ctx, IndexFile, newIndex[0])
	if err != nil {
		t.Fatal(err)
	}
	ij, _ := DecodeIndex(buf)
	if len(ij.Supersedes) != len(oldIndex) || len(oldIndex) < 2 {
		t.Errorf("supersedes %v, old index files %v", ij.Supersedes, oldIndex)
	}
	// Nothing left to do.
	plan, err = runPrune(t, be, used)
	if err != nil || plan.Stats.RepackPacks+plan.Stats.RemovePacks+plan.Stats.UnindexedPacks != 0 {
		t.Fatalf("second prune: %+v, %v", plan.Stats, err)
	}
}

// A prune that dies after any number of writes and deletions leaves a
// repository where every used blob loads and check finds no error; the
// next prune then completes.
func TestPruneInterrupted(t *testing.T) {
	base, used, _ := pruneFixture(t)
	// Count the writes and deletions of a full prune.
	full := filepath.Join(t.TempDir(), "full")
	copyDir(t, base, full)
	lb, _ := OpenLocal(full)
	counter := &failingBackend{Backend: lb}
	if _, err := runPrune(t, counter, used); err != nil {
		t.Fatal(err)
	}
	total := counter.ops
	if total < 5 {
		t.Fatalf("a full prune made only %d changes", total)
	}
	for k := 0; k < total; k++ {
		dir := filepath.Join(t.TempDir(), "repo")
		copyDir(t, base, dir)
		lb, _ := OpenLocal(dir)
		_, err := runPrune(t, &failingBackend{Backend: lb, limit: true, left: k}, used)
		if !errors.Is(err, errKilled) {
			t.Fatalf("killed after %d of %d changes: err = %v", k, total, err)
		}
		assertIntact(t, dir, used, false)
		if _, err := runPrune(t, lb, used); err != nil {
			t.Fatalf("prune after a prune killed after %d changes: %v", k, err)
		}
		p := assertIntact(t, dir, used, k%5 == 0)
		if len(p.warns) > 0 {
			t.Errorf("killed after %d changes, pruned again: warnings %q", k, p.warns)
		}
	}
}

// A used blob that is damaged in a pack to be repacked stops the prune
// before anything is deleted.
func TestPruneDamagedBlob(t *testing.T) {
	ctx := context.Background()
	dir, used, _ := pruneFixture(t)
	r := reopen(t, dir)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	var victim PackedBlob
	for h := range used {
		if h.Type == DataBlob {
			victim = r.LookupBlob(h.Type, h.ID)[0]
			break
		}
	}
	modifyFile(t, packPath(dir, victim.Pack), func(b []byte) []byte {
		b[victim.Offset+40] ^= 0xff
		return b
	})
	countFiles := func() int {
		n := 0
		filepath.WalkDir(dir, func(_ string, de fs.DirEntry, _ error) error {
			if de != nil && !de.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	// The damaged pack's size is right, so the plan repacks it.
	be, _ := OpenLocal(dir)
	filesBefore := countFiles()
	_, err := runPrune(t, be, used)
	if err == nil || !errors.Is(err, ErrCorruptPack) {
		t.Fatalf("err = %v, want a corrupt pack error", err)
	}
	if _, statErr := os.Stat(packPath(dir, victim.Pack)); statErr != nil {
		t.Fatalf("the damaged pack was deleted: %v", statErr)
	}
	if countFiles() < filesBefore {
		t.Errorf("%d files before, %d after a failed prune", filesBefore, countFiles())
	}
}
