package fusefs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// Crafted trees, written through the repo and snapshot packages as anyone
// with the password could.

var craftTime = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func craftFile(t *testing.T, r *repo.Repository, name, content string) *snapshot.Node {
	t.Helper()
	id, _, _, err := r.SaveBlob(context.Background(), repo.DataBlob, []byte(content), repo.ID{})
	if err != nil {
		t.Fatal(err)
	}
	return &snapshot.Node{Name: name, Type: snapshot.NodeFile, Mode: 0o644, ModTime: craftTime, Size: uint64(len(content)), Content: []repo.ID{id}}
}

func craftRawDir(t *testing.T, r *repo.Repository, name string, buf []byte) *snapshot.Node {
	t.Helper()
	id, _, _, err := r.SaveBlob(context.Background(), repo.TreeBlob, buf, repo.ID{})
	if err != nil {
		t.Fatal(err)
	}
	return &snapshot.Node{Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, ModTime: craftTime, Subtree: &id}
}

// craftDir saves nodes in the given order, unsorted and unchecked.
func craftDir(t *testing.T, r *repo.Repository, name string, nodes ...*snapshot.Node) *snapshot.Node {
	t.Helper()
	buf, err := (&snapshot.Tree{Nodes: nodes}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return craftRawDir(t, r, name, buf)
}

func craftSnapshot(t *testing.T, r *repo.Repository, root *snapshot.Node, when time.Time) repo.ID {
	t.Helper()
	ctx := context.Background()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := snapshot.SaveSnapshot(ctx, r, &snapshot.Snapshot{Time: when, Tree: root.Subtree, Paths: []string{"/data"}, Hostname: "testhost"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestMountDamaged: a directory whose tree cannot be decoded is EIO for
// itself only (logged once); an unreadable snapshot file is left out and
// logged; repeated names are listed once; everything else works.
func TestMountDamaged(t *testing.T) {
	r, dir := newRepo(t)
	good := craftSnapshot(t, r, craftDir(t, r, "", craftDir(t, r, "data",
		craftFile(t, r, "a.txt", "alpha"),
		craftRawDir(t, r, "bad", []byte("[not a tree")),
		craftDir(t, r, "good", craftFile(t, r, "x.txt", "x")),
		// Whether this tree decodes depends on DecodeTree's checks;
		// either way the mount must not show "dup" twice.
		craftDir(t, r, "names", craftFile(t, r, "dup", "first"), craftFile(t, r, "dup", "second")),
	)), craftTime)
	broken := craftSnapshot(t, r, craftDir(t, r, "", craftFile(t, r, "new.txt", "new")), craftTime.Add(time.Hour))
	p := filepath.Join(dir, "snapshots", broken.String())
	os.Chmod(p, 0o600)
	if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var warnings []string
	m, f := mountRepo(t, dir, Options{Warn: func(err error) {
		mu.Lock()
		warnings = append(warnings, err.Error())
		mu.Unlock()
	}})
	if sns, trees := f.Damaged(); sns != 1 || trees != 0 {
		t.Fatalf("after mounting: %d unreadable snapshots, %d damaged trees; want 1, 0", sns, trees)
	}
	if names := readDirNames(t, filepath.Join(m.Dir, "ids")); !slices.Equal(names, []string{good.Str()}) {
		t.Fatalf("ids/ = %v, want only the readable snapshot", names)
	}

	data := filepath.Join(m.Dir, "ids", good.Str(), "data")
	if names := readDirNames(t, data); !slices.Equal(names, []string{"a.txt", "bad", "good", "names"}) {
		t.Errorf("data/ = %v", names)
	}
	damagedTrees := 1
	if es, err := os.ReadDir(filepath.Join(data, "names")); err == nil {
		if len(es) != 1 || es[0].Name() != "dup" {
			t.Errorf("names/ = %v, want dup once", es)
		}
		if got, err := os.ReadFile(filepath.Join(data, "names", "dup")); err != nil || string(got) != "first" {
			t.Errorf("dup reads %q, %v; want the first entry", got, err)
		}
	} else if !errors.Is(err, syscall.EIO) {
		t.Errorf("names/: %v, want its entries or EIO", err)
	} else {
		damagedTrees++
	}
	// The damaged directory can be stat'ed, not read.
	if fi, err := os.Stat(filepath.Join(data, "bad")); err != nil || !fi.IsDir() {
		t.Fatalf("stat bad: %v %v", fi, err)
	}
	for range 2 {
		if _, err := os.ReadDir(filepath.Join(data, "bad")); !errors.Is(err, syscall.EIO) {
			t.Fatalf("reading the damaged directory: %v, want EIO", err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "bad", "anything")); !errors.Is(err, syscall.EIO) {
		t.Errorf("lookup in the damaged directory: %v, want EIO", err)
	}
	// The rest still works.
	if got, err := os.ReadFile(filepath.Join(data, "good", "x.txt")); err != nil || string(got) != "x" {
		t.Errorf("good/x.txt: %q, %v", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(data, "a.txt")); err != nil || string(got) != "alpha" {
		t.Errorf("a.txt: %q, %v", got, err)
	}
	if sns, trees := f.Damaged(); sns != 1 || trees != damagedTrees {
		t.Errorf("damage counted: %d snapshots, %d trees; want 1, %d", sns, trees, damagedTrees)
	}
	mu.Lock()
	defer mu.Unlock()
	var aboutBad, aboutSnap int
	for _, w := range warnings {
		if strings.Contains(w, "/ids/"+good.Str()+"/data/bad: cannot read this directory") {
			aboutBad++
		}
		if strings.Contains(w, "snapshot "+broken.Str()+" cannot be read") {
			aboutSnap++
		}
	}
	if aboutBad != 1 || aboutSnap != 1 {
		t.Errorf("want one warning each about data/bad and the broken snapshot, got %d and %d: %q", aboutBad, aboutSnap, warnings)
	}
}
