package browse

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/testutil"
)

type brFindFixture struct {
	l        *snapshot.TreeLoader
	old, new *snapshot.Snapshot
	src      string
}

// brFindSetup backs a tree up twice; the newer snapshot has one more file.
func brFindSetup(t *testing.T) *brFindFixture {
	t.Helper()
	r := brNewRepo(t)
	src := t.TempDir()
	testutil.GenTree(t, src, brGenOptions(9))
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	// A first backup reads every directory, which updates their atimes
	// once (relatime); after it, unchanged directories keep their trees.
	brBackup(t, r, src, t0.Add(-time.Hour))
	old := brBackup(t, r, src, t0)
	if err := os.WriteFile(filepath.Join(src, "deep-1", "Needle.TXT"), []byte("found me"), 0o644); err != nil {
		t.Fatal(err)
	}
	newer := brBackup(t, r, src, t0.Add(time.Hour))
	return &brFindFixture{l: snapshot.NewTreeLoader(r, 256), old: old, new: newer, src: src}
}

func (fx *brFindFixture) find(t *testing.T, opts FindOptions) []*FindResult {
	t.Helper()
	var out []*FindResult
	// Oldest first on purpose: Find must order newest first.
	err := Find(context.Background(), fx.l, []*snapshot.Snapshot{fx.old, fx.new}, opts, func(r *FindResult) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatalf("find %+v: %v", opts, err)
	}
	return out
}

func brMatchPaths(res *FindResult) []string {
	var ps []string
	for _, m := range res.Matches {
		ps = append(ps, m.Path)
	}
	return ps
}

// brSourceMatches lists the source paths whose base name matches glob.
func brSourceMatches(t *testing.T, src, glob string, keep func(p string, fi os.FileInfo) bool) []string {
	t.Helper()
	var out []string
	filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := path.Match(glob, fi.Name()); ok && p != src && (keep == nil || keep(p, fi)) {
			out = append(out, filepath.ToSlash(p))
		}
		return nil
	})
	slices.Sort(out)
	return out
}

func TestFindPatterns(t *testing.T) {
	fx := brFindSetup(t)
	res := fx.find(t, FindOptions{Patterns: []string{"*.txt"}})
	if len(res) != 2 || res[0].Snapshot != fx.new || res[1].Snapshot != fx.old {
		t.Fatalf("want results for both snapshots, newest first; got %d", len(res))
	}
	want := brSourceMatches(t, fx.src, "*.txt", nil)
	got := brMatchPaths(res[0])
	slices.Sort(got)
	if !slices.Equal(got, want) || len(want) < 10 {
		t.Fatalf("*.txt in the new snapshot:\n got %q\nwant %q", got, want)
	}

	// Case: only -i finds the new file by a lower-case pattern.
	needle := path.Join(fx.src, "deep-1", "Needle.TXT")
	if res := fx.find(t, FindOptions{Patterns: []string{"needle.txt"}}); len(res) != 0 {
		t.Fatalf("case-sensitive find matched: %q", brMatchPaths(res[0]))
	}
	res = fx.find(t, FindOptions{Patterns: []string{"needle.*"}, IgnoreCase: true})
	if len(res) != 1 || res[0].Snapshot != fx.new || !slices.Equal(brMatchPaths(res[0]), []string{needle}) {
		t.Fatalf("find -i needle.*: %+v", res)
	}

	// Patterns with "/": anchored at the root, or matching a trailing part.
	anchored := path.Join(fx.src, "deep-1", "*")
	res = fx.find(t, FindOptions{Patterns: []string{anchored}})
	want = brWalkSource(t, filepath.Join(fx.src, "deep-1"), false)
	if len(res) != 2 || !slices.Equal(brMatchPaths(res[0]), want) {
		t.Fatalf("find %s:\n got %q\nwant %q", anchored, brMatchPaths(res[0]), want)
	}
	res = fx.find(t, FindOptions{Patterns: []string{"deep-1/Needle.*"}})
	if len(res) != 1 || !slices.Equal(brMatchPaths(res[0]), []string{needle}) {
		t.Fatalf("find deep-1/Needle.*: %+v", res)
	}

	// mtime bounds: the generated mtimes are distinct, one hour apart.
	files := brSourceMatches(t, fx.src, "file-*", nil)
	fi, _ := os.Lstat(files[len(files)/2])
	bound := fi.ModTime()
	newer := brSourceMatches(t, fx.src, "file-*", func(_ string, fi os.FileInfo) bool { return !fi.ModTime().Before(bound) })
	older := brSourceMatches(t, fx.src, "file-*", func(_ string, fi os.FileInfo) bool { return !fi.ModTime().After(bound) })
	res = fx.find(t, FindOptions{Patterns: []string{"file-*"}, Oldest: bound})
	if got := brMatchPaths(res[1]); !slices.Equal(sorted(got), newer) {
		t.Fatalf("--oldest %v: got %d, want %d", bound, len(got), len(newer))
	}
	res = fx.find(t, FindOptions{Patterns: []string{"file-*"}, Newest: bound})
	if got := brMatchPaths(res[1]); !slices.Equal(sorted(got), older) {
		t.Fatalf("--newest %v: got %d, want %d", bound, len(got), len(older))
	}
	if len(newer)+len(older) != len(files)+1 {
		t.Fatalf("bounds overlap wrongly: %d + %d vs %d", len(newer), len(older), len(files))
	}

	if err := Find(context.Background(), fx.l, []*snapshot.Snapshot{fx.new}, FindOptions{Patterns: []string{"[x"}}, nil); err == nil {
		t.Fatal("a bad pattern was accepted")
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestFindIDs(t *testing.T) {
	fx := brFindSetup(t)
	large := path.Join(fx.src, "large-00.bin")
	node := brNode(t, fx.l, fx.new, large)
	blob := node.Content[1]
	res := fx.find(t, FindOptions{BlobIDs: []string{blob.String()[:9]}})
	if len(res) != 2 {
		t.Fatalf("blob %s: found in %d snapshots, want 2", blob.Str(), len(res))
	}
	for _, r := range res {
		if len(r.Matches) != 1 || r.Matches[0].Path != large || r.Matches[0].ID != blob {
			t.Fatalf("blob search in %s: %+v", r.Snapshot.ID.Str(), r.Matches)
		}
	}
	// Only the new snapshot has the new file's blob.
	needle := brNode(t, fx.l, fx.new, path.Join(fx.src, "deep-1", "Needle.TXT"))
	res = fx.find(t, FindOptions{BlobIDs: []string{strings.ToUpper(needle.Content[0].String()[:12])}})
	if len(res) != 1 || res[0].Snapshot != fx.new {
		t.Fatalf("new blob: %+v", res)
	}

	// Trees: deep-2 is the same in both snapshots; deep-1 changed.
	deep2 := brNode(t, fx.l, fx.new, path.Join(fx.src, "deep-1", "deep-2"))
	res = fx.find(t, FindOptions{TreeIDs: []string{deep2.Subtree.String()}})
	if len(res) != 2 || res[0].Matches[0].Path != path.Join(fx.src, "deep-1", "deep-2") {
		t.Fatalf("tree search: %d results", len(res))
	}
	res = fx.find(t, FindOptions{TreeIDs: []string{fx.old.Tree.String()[:8]}})
	if len(res) != 1 || res[0].Snapshot != fx.old || res[0].Matches[0].Path != "/" {
		t.Fatalf("root tree search: %+v", res)
	}
	if _, err := newFinder(FindOptions{BlobIDs: []string{"xyz"}}); err == nil {
		t.Fatal("a non-hex ID was accepted")
	}
	p, _ := parseIDPrefix("abc")
	if !p.match(repo.ID{0xab, 0xc7}) || p.match(repo.ID{0xab, 0xd0}) {
		t.Fatal("odd-length prefix matching is wrong")
	}
}
