package browse

import (
	"context"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/cairn-backup/cairn/tests/testutil"
)

func brDiff(t *testing.T, l *snapshot.TreeLoader, a, b *snapshot.Snapshot, opts DiffOptions) (map[string]string, []string, *DiffStats) {
	t.Helper()
	changes := map[string]string{}
	var order []string
	st, err := Diff(context.Background(), l, *a.Tree, *b.Tree, opts, func(c DiffChange) error {
		if _, dup := changes[c.DisplayPath()]; dup {
			t.Errorf("%s reported twice", c.DisplayPath())
		}
		changes[c.DisplayPath()] = c.Modifier
		order = append(order, c.Path)
		return nil
	})
	if err != nil {
		t.Fatalf("diff: %v", err)
	}
	return changes, order, st
}

func brSize(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(fi.Size())
}

func TestDiff(t *testing.T) {
	r := brNewRepo(t)
	src := t.TempDir()
	testutil.GenTree(t, src, brGenOptions(11))
	j := func(p ...string) string { return filepath.Join(append([]string{src}, p...)...) }
	t0 := time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)
	brBackup(t, r, src, t0.Add(-time.Hour)) // settles directory atimes
	old := brBackup(t, r, src, t0)

	want := map[string]string{}
	var removed DiffCounts
	var addedBytes, removedBytes uint64
	// Removed: the whole deep-4 directory, and the file "x".
	deep4 := j("deep-1", "deep-2", "deep-3", "deep-4")
	filepath.WalkDir(deep4, func(p string, d fs.DirEntry, err error) error {
		switch {
		case d.IsDir():
			want[p+"/"] = "-"
			removed.Dirs++
		case d.Type().IsRegular():
			want[p] = "-"
			removed.Files++
			removedBytes += brSize(t, p)
		default:
			want[p] = "-"
			removed.Others++
		}
		return nil
	})
	if removed.Files < 2 || removed.Others < 1 {
		t.Fatalf("deep-4 holds too little: %+v", removed)
	}
	removedBytes += brSize(t, j("x"))
	removed.Files++
	want[j("x")] = "-"
	must(t, os.RemoveAll(deep4))
	must(t, os.Remove(j("x")))
	// Modified content; a file that became a directory.
	removedBytes += brSize(t, j(".hidden")) + brSize(t, j("-leading-dash"))
	addedBytes += uint64(len(brRandom(t, j(".hidden"), 3000, 21)))
	want[j(".hidden")] = "M"
	must(t, os.Remove(j("-leading-dash")))
	must(t, os.Mkdir(j("-leading-dash"), 0o755))
	addedBytes += uint64(len(brRandom(t, j("-leading-dash", "inner.txt"), 1500, 22)))
	want[j("-leading-dash")+"/"] = "T"
	want[j("-leading-dash", "inner.txt")] = "+"
	// Added: a file and a directory with two files.
	addedBytes += uint64(len(brRandom(t, j("added.txt"), 5000, 23)))
	must(t, os.Mkdir(j("newdir"), 0o700))
	addedBytes += uint64(len(brRandom(t, j("newdir", "a"), 100, 24)))
	addedBytes += uint64(len(brRandom(t, j("newdir", "b"), 200, 25)))
	want[j("added.txt")] = "+"
	want[j("newdir")+"/"] = "+"
	want[j("newdir", "a")] = "+"
	want[j("newdir", "b")] = "+"
	// Metadata only.
	must(t, os.Chmod(j("link-target.txt"), 0o600))
	newer := brBackup(t, r, src, t0.Add(time.Hour))

	l := snapshot.NewTreeLoader(r, 256)
	got, order, st := brDiff(t, l, old, newer, DiffOptions{})
	if !maps.Equal(got, want) {
		t.Fatalf("changes:\n got %v\nwant %v", got, want)
	}
	if !slices.IsSortedFunc(order, func(a, b string) int {
		return strings.Compare(strings.ReplaceAll(a, "/", "\x00"), strings.ReplaceAll(b, "/", "\x00"))
	}) {
		t.Errorf("changes not in path order: %q", order)
	}
	if st.ChangedFiles != 2 {
		t.Errorf("changed files = %d, want 2", st.ChangedFiles)
	}
	wantAdded := DiffCounts{Files: 4, Dirs: 1, DataBlobs: 5, Bytes: addedBytes}
	st.Added.TreeBlobs = 0
	if st.Added != wantAdded {
		t.Errorf("added = %+v, want %+v", st.Added, wantAdded)
	}
	if st.Removed.TreeBlobs < removed.Dirs {
		t.Errorf("removed tree blobs = %d, want at least %d", st.Removed.TreeBlobs, removed.Dirs)
	}
	if st.Removed.Files != removed.Files || st.Removed.Dirs != removed.Dirs || st.Removed.Others != removed.Others || st.Removed.Bytes != removedBytes {
		t.Errorf("removed = %+v, want %+v with %d bytes", st.Removed, removed, removedBytes)
	}

	// --metadata adds "U" for the chmod and for directories whose mtime
	// changed; nothing else changes.
	got, _, _ = brDiff(t, l, old, newer, DiffOptions{Metadata: true})
	if got[j("link-target.txt")] != "U" || got[src+"/"] != "U" || got[j("deep-1", "deep-2", "deep-3")+"/"] != "U" {
		t.Errorf("metadata changes missing: %v", got)
	}
	for p, m := range want {
		if got[p] != m {
			t.Errorf("with --metadata, %s is %q, want %q", p, got[p], m)
		}
	}
	// A snapshot against itself has no changes.
	got, _, st = brDiff(t, l, newer, newer, DiffOptions{Metadata: true})
	if len(got) != 0 || st.Added != (DiffCounts{}) || st.Removed != (DiffCounts{}) {
		t.Errorf("self-diff: %v %+v", got, st)
	}
	buf, _ := json.Marshal(st)
	if !strings.Contains(string(buf), `"changed_files":0`) || !strings.Contains(string(buf), `"data_blobs":0`) {
		t.Errorf("stats JSON: %s", buf)
	}
}

// TestDiffSkipsSameSubtrees proves that identical subtrees are not loaded:
// both snapshots point to a tree that is not in the repository.
func TestDiffSkipsSameSubtrees(t *testing.T) {
	r := brNewRepo(t)
	a := archiver.NewArchiver(r, archiver.ArchiveOptions{})
	ctx := context.Background()
	ghost := repo.Hash([]byte("a tree that was never stored"))
	shared := &snapshot.Node{Name: "shared", Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, Subtree: &ghost}
	file := func(content string) *snapshot.Node {
		ids, size, err := a.SaveReader(ctx, strings.NewReader(content))
		must(t, err)
		return &snapshot.Node{Name: "f", Type: snapshot.NodeFile, Mode: 0o644, Size: size, Content: ids}
	}
	rootA, err := a.SaveTree(ctx, &snapshot.Tree{Nodes: []*snapshot.Node{shared, file("one")}})
	must(t, err)
	rootB, err := a.SaveTree(ctx, &snapshot.Tree{Nodes: []*snapshot.Node{shared, file("two!")}})
	must(t, err)
	must(t, r.Flush(ctx))
	var changes []string
	st, err := Diff(ctx, snapshot.NewTreeLoader(r, 8), rootA, rootB, DiffOptions{}, func(c DiffChange) error {
		changes = append(changes, c.Modifier+" "+c.DisplayPath())
		return nil
	})
	if err != nil {
		t.Fatalf("diff loaded the shared subtree: %v", err)
	}
	if !slices.Equal(changes, []string{"M /f"}) || st.Added.DataBlobs != 1 || st.Added.Bytes != 4 || st.Removed.Bytes != 3 {
		t.Fatalf("changes %q, stats %+v", changes, st)
	}
}
