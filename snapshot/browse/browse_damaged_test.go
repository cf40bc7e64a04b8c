package browse

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// Crafted trees for the browse functions, written as anyone with the
// password could ("dm" keeps clear of other tests' helpers).

var dmTime = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func dmFile(t *testing.T, r *repo.Repository, name, content string) *snapshot.Node {
	t.Helper()
	id, _, _, err := r.SaveBlob(context.Background(), repo.DataBlob, []byte(content), repo.ID{})
	if err != nil {
		t.Fatal(err)
	}
	return &snapshot.Node{Name: name, Type: snapshot.NodeFile, Mode: 0o644, ModTime: dmTime, Size: uint64(len(content)), Content: []repo.ID{id}}
}

func dmRawDir(t *testing.T, r *repo.Repository, name string, buf []byte) *snapshot.Node {
	t.Helper()
	id, _, _, err := r.SaveBlob(context.Background(), repo.TreeBlob, buf, repo.ID{})
	if err != nil {
		t.Fatal(err)
	}
	return &snapshot.Node{Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, ModTime: dmTime, Subtree: &id}
}

// dmDir saves nodes in the given order, neither sorted nor checked.
func dmDir(t *testing.T, r *repo.Repository, name string, nodes ...*snapshot.Node) *snapshot.Node {
	t.Helper()
	buf, err := (&snapshot.Tree{Nodes: nodes}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return dmRawDir(t, r, name, buf)
}

func dmMissingDir(name string) *snapshot.Node {
	id := repo.Hash([]byte("missing " + name))
	return &snapshot.Node{Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, ModTime: dmTime, Subtree: &id}
}

func dmSnapshot(t *testing.T, r *repo.Repository, root *snapshot.Node, when time.Time) *snapshot.Snapshot {
	t.Helper()
	ctx := context.Background()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sn := &snapshot.Snapshot{Time: when, Tree: root.Subtree, Paths: []string{"/data"}}
	if _, err := snapshot.SaveSnapshot(ctx, r, sn); err != nil {
		t.Fatal(err)
	}
	return sn
}

type dmReport struct{ items []string }

func (d *dmReport) damaged(p string, err error) error {
	d.items = append(d.items, p+": "+err.Error())
	return nil
}

// dmDamagedRoot: /data with a tree that is not JSON, one in no pack, a
// directory node without subtree, and /data/names with a repeated and an
// unusable name. (Whether /data/names decodes depends on DecodeTree's
// checks: if it does, its bad entries are left out one by one; if not, it
// is one damaged tree. The tests accept both.)
func dmDamagedRoot(t *testing.T, r *repo.Repository) *snapshot.Node {
	return dmDir(t, r, "", dmDir(t, r, "data",
		dmFile(t, r, "a", "a"),
		dmRawDir(t, r, "bad", []byte("{")),
		dmMissingDir("gone"),
		dmDir(t, r, "names",
			dmFile(t, r, "dup", "first"),
			&snapshot.Node{Name: "dup", Type: snapshot.NodeSymlink, LinkTarget: "/etc"},
			&snapshot.Node{Name: "..", Type: snapshot.NodeSymlink, LinkTarget: "/"},
			dmFile(t, r, "ok", "ok"),
		),
		&snapshot.Node{Name: "nosub", Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755},
		dmDir(t, r, "ok", dmFile(t, r, "x", "x")),
		dmFile(t, r, "z", "z"),
	))
}

// dmOutsideNames drops what is below /data/names and checks that it is,
// if anything, the usable entries: dup once and ok.
func dmOutsideNames(t *testing.T, what string, list []string, below string) []string {
	t.Helper()
	var out, in []string
	for _, p := range list {
		if strings.Contains(p, below) && !strings.HasSuffix(p, below) {
			in = append(in, p)
		} else {
			out = append(out, p)
		}
	}
	if len(in) != 0 && len(in) != 2 {
		t.Errorf("%s: below %s: %q, want nothing or dup and ok", what, below, in)
	}
	return out
}

// dmCheckReports checks the damage reports: each of the damaged trees,
// and /data/names either as a whole or for its two bad entries.
func dmCheckReports(t *testing.T, reports []string, prefix string) {
	t.Helper()
	names := 0
	for _, w := range []string{prefix + "/data/bad: tree", prefix + "/data/gone: load tree", prefix + "/data/nosub: directory node has no subtree"} {
		if !slices.ContainsFunc(reports, func(s string) bool { return strings.HasPrefix(s, w) }) {
			t.Errorf("no report starting %q in %q", w, reports)
		}
	}
	for _, r := range reports {
		if strings.HasPrefix(r, prefix+"/data/names: ") {
			names++
		}
	}
	if names < 1 || len(reports) != 3+names || (names == 2) != slices.ContainsFunc(reports, func(s string) bool { return strings.Contains(s, `entry "dup": unusable name: repeats`) }) {
		t.Errorf("reports %q: want bad, gone, nosub and /data/names (as a whole or its entries \"..\" and the second \"dup\")", reports)
	}
}

func TestWalkNameProblem(t *testing.T) {
	nodes := []*snapshot.Node{{Name: ""}, {Name: "."}, {Name: ".."}, {Name: "a"}, {Name: "a"}, {Name: "a/b"}, {Name: "b\x00"}, {Name: "c"}, {Name: "..."}}
	var bad []int
	for i := range nodes {
		if snapshot.NameProblem(nodes, i) != "" {
			bad = append(bad, i)
		}
	}
	if want := []int{0, 1, 2, 4, 5, 6}; !slices.Equal(bad, want) {
		t.Errorf("unusable: %v, want %v", bad, want)
	}
}

func TestWalkDamagedGoesOn(t *testing.T) {
	r := brNewRepo(t)
	root := dmDamagedRoot(t, r)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	l := snapshot.NewTreeLoader(r, 64)
	var seen []string
	var rep dmReport
	err := snapshot.WalkDamaged(context.Background(), l, *root.Subtree, func(p string, n *snapshot.Node) error {
		seen = append(seen, p)
		return nil
	}, rep.damaged)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/data", "/data/a", "/data/bad", "/data/gone", "/data/names", "/data/nosub", "/data/ok", "/data/ok/x", "/data/z"}
	if got := dmOutsideNames(t, "walk", seen, "/data/names/"); !slices.Equal(got, want) {
		t.Errorf("walked %q\nwant   %q", got, want)
	}
	dmCheckReports(t, rep.items, "")
	// The first of repeated names is the one shown, and FindNode agrees.
	if n, err := snapshot.FindNode(context.Background(), l, *root.Subtree, "/data/names/dup"); err == nil && n.Type != snapshot.NodeFile {
		t.Errorf("FindNode /data/names/dup: %v, want the file (the first entry)", n)
	}

	// Walk (strict) ends at the first damaged tree; a DamagedFunc that
	// returns an error ends WalkDamaged with it.
	if err := snapshot.Walk(context.Background(), l, *root.Subtree, func(string, *snapshot.Node) error { return nil }); err == nil || !strings.Contains(err.Error(), "/data/bad") {
		t.Errorf("Walk over a damaged tree: %v", err)
	}
	stop := errors.New("stop")
	err = snapshot.WalkDamaged(context.Background(), l, *root.Subtree, func(string, *snapshot.Node) error { return nil }, func(string, error) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("WalkDamaged with a stopping handler: %v", err)
	}
	// Cancellation is no damaged item.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = snapshot.WalkDamaged(ctx, snapshot.NewTreeLoader(r, 64), *root.Subtree, func(string, *snapshot.Node) error { return nil }, func(p string, err error) error {
		t.Errorf("cancellation reported as damage: %s: %v", p, err)
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled walk: %v", err)
	}
}

func TestFindGoesOnPastDamage(t *testing.T) {
	r := brNewRepo(t)
	old := dmSnapshot(t, r, dmDir(t, r, "", dmDir(t, r, "data", dmDir(t, r, "ok", dmFile(t, r, "x", "x")))), dmTime)
	mid := dmSnapshot(t, r, dmDamagedRoot(t, r), dmTime.Add(time.Hour))
	newest := dmSnapshot(t, r, dmMissingDir(""), dmTime.Add(2*time.Hour)) // root tree in no pack
	l := snapshot.NewTreeLoader(r, 64)
	for _, opts := range []FindOptions{{Patterns: []string{"x"}}, {BlobIDs: []string{repo.Hash([]byte("x")).String()[:10]}}} {
		var damaged []string
		opts.Damaged = func(sn *snapshot.Snapshot, p string, err error) error {
			if p == "/" {
				damaged = append(damaged, sn.ID.Str()+" "+p)
			} else {
				damaged = append(damaged, sn.ID.Str()+" "+p+": "+err.Error())
			}
			return nil
		}
		var found []string
		err := Find(context.Background(), l, []*snapshot.Snapshot{old, mid, newest}, opts, func(res *FindResult) error {
			for _, m := range res.Matches {
				found = append(found, res.Snapshot.ID.Str()+" "+m.Path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{mid.ID.Str() + " /data/ok/x", old.ID.Str() + " /data/ok/x"}; !slices.Equal(found, want) {
			t.Errorf("%+v found %q, want %q", opts, found, want)
		}
		if !slices.Contains(damaged, newest.ID.Str()+" /") {
			t.Errorf("%+v: the broken root is not reported: %q", opts, damaged)
		}
		dmCheckReports(t, slices.DeleteFunc(damaged, func(s string) bool { return s == newest.ID.Str()+" /" }), mid.ID.Str()+" ")
	}
}

func TestDiffDamaged(t *testing.T) {
	r := brNewRepo(t)
	a := dmSnapshot(t, r, dmDir(t, r, "", dmDir(t, r, "data", dmFile(t, r, "a", "old a"), dmDir(t, r, "ok", dmFile(t, r, "x", "x")))), dmTime)
	b := dmSnapshot(t, r, dmDamagedRoot(t, r), dmTime.Add(time.Hour))
	var rep dmReport
	var changes []string
	_, err := Diff(context.Background(), snapshot.NewTreeLoader(r, 64), *a.Tree, *b.Tree, DiffOptions{Damaged: rep.damaged}, func(c DiffChange) error {
		changes = append(changes, c.Modifier+" "+c.Path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"M /data/a", "+ /data/bad", "+ /data/gone", "+ /data/names", "+ /data/nosub", "+ /data/z"}
	if got := dmOutsideNames(t, "diff", changes, "/data/names/"); !slices.Equal(got, want) {
		t.Errorf("changes %q\nwant    %q", got, want)
	}
	dmCheckReports(t, rep.items, "")
	if _, err := Diff(context.Background(), snapshot.NewTreeLoader(r, 64), *a.Tree, *b.Tree, DiffOptions{}, func(DiffChange) error { return nil }); err == nil {
		t.Error("Diff without a Damaged handler passed over a damaged tree")
	}
}

func TestArchiveNameProblem(t *testing.T) {
	for _, c := range []struct {
		name, format string
		ok           bool
	}{
		{"a", ArchiveTar, true},
		{"a/b c/d", ArchiveZip, true},
		{`a\b`, ArchiveTar, true},
		{`a\b`, ArchiveZip, false},
		{"..a/b..", ArchiveTar, true},
		{"", ArchiveTar, false},
		{"/etc/passwd", ArchiveTar, false},
		{"a/../b", ArchiveTar, false},
		{"..", ArchiveZip, false},
		{"a/./b", ArchiveTar, false},
		{"a//b", ArchiveTar, false},
		{"a/", ArchiveTar, false},
		{"a\x00b", ArchiveTar, false},
	} {
		if got := archiveNameProblem(c.name, c.format) == ""; got != c.ok {
			t.Errorf("archiveNameProblem(%q, %s) ok = %v, want %v", c.name, c.format, got, c.ok)
		}
	}
}

func TestDumpDamaged(t *testing.T) {
	r := brNewRepo(t)
	sn := dmSnapshot(t, r, dmDamagedRoot(t, r), dmTime)
	l := snapshot.NewTreeLoader(r, 64)
	var rep dmReport
	var buf bytes.Buffer
	if err := Dump(context.Background(), l, NewBlobCache(r, 0), *sn.Tree, "/data", ArchiveTar, &buf, rep.damaged); err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	want := []string{"data/", "data/a", "data/bad/", "data/gone/", "data/names/", "data/nosub/", "data/ok/", "data/ok/x", "data/z"}
	if got := dmOutsideNames(t, "dump", names, "data/names/"); !slices.Equal(got, want) {
		t.Errorf("entries %q\nwant    %q", got, want)
	}
	dmCheckReports(t, rep.items, "")
	// Without a handler the first damaged item ends the dump.
	if err := Dump(context.Background(), l, NewBlobCache(r, 0), *sn.Tree, "/data", ArchiveZip, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "/data/bad") {
		t.Errorf("dump without a handler: %v", err)
	}
}

// TestLatestNeverFallsBack: when any snapshot file cannot be read,
// "latest" is an error naming it; an ID still resolves.
func TestLatestNeverFallsBack(t *testing.T) {
	r := brNewRepo(t)
	old := dmSnapshot(t, r, dmDir(t, r, "", dmFile(t, r, "a", "a")), dmTime)
	newest := dmSnapshot(t, r, dmDir(t, r, "", dmFile(t, r, "b", "b")), dmTime.Add(time.Hour))
	ctx := context.Background()
	if sn, err := snapshot.FindSnapshot(ctx, r, "latest", snapshot.Filter{}); err != nil || sn.ID != newest.ID {
		t.Fatalf("latest before the damage: %v %v", sn, err)
	}
	h := repo.Handle{Type: repo.SnapshotFile, Name: newest.ID.String()}
	if err := r.Backend().Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := r.Backend().Save(ctx, h, bytes.NewReader([]byte("garbage")), 7); err != nil {
		t.Fatal(err)
	}
	_, err := snapshot.FindSnapshot(ctx, r, "latest", snapshot.Filter{})
	if !errors.Is(err, snapshot.ErrUnreadableSnapshot) || !strings.Contains(err.Error(), newest.ID.String()) {
		t.Fatalf("latest with the newest snapshot damaged: %v", err)
	}
	if sn, err := snapshot.FindSnapshot(ctx, r, old.ID.Str(), snapshot.Filter{}); err != nil || sn.ID != old.ID {
		t.Errorf("by ID: %v %v", sn, err)
	}
	var warned []error
	sns, err := snapshot.ListSnapshots(ctx, r, snapshot.Filter{}, func(err error) { warned = append(warned, err) })
	if err != nil || len(sns) != 1 || len(warned) != 1 || !errors.Is(warned[0], snapshot.ErrUnreadableSnapshot) {
		t.Errorf("list: %d snapshots, warnings %v, %v", len(sns), warned, err)
	}
}
