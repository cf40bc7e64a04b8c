package archiver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sys/unix"
)

// arTreeIDs maps the slash path of every directory below (and of) tree to
// its tree ID.
func arTreeIDs(t *testing.T, r *repo.Repository, tree repo.ID, p string, out map[string]repo.ID) map[string]repo.ID {
	t.Helper()
	if out == nil {
		out = map[string]repo.ID{}
	}
	out[p] = tree
	tr, err := snapshot.LoadTree(context.Background(), r, tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tr.Nodes {
		if n.Subtree != nil {
			arTreeIDs(t, r, *n.Subtree, snapshot.JoinPath(p, n.Name), out)
		}
	}
	return out
}

// arReuseTree writes src/{a/b/c/deep.txt, a/b/side.txt, a/other/x, top.txt,
// empty/} and returns src.
func arReuseTree(t *testing.T) string {
	src := filepath.Join(t.TempDir(), "src")
	arWrite(t, filepath.Join(src, "a/b/c/deep.txt"), []byte("deep"))
	arWrite(t, filepath.Join(src, "a/b/side.txt"), []byte("side"))
	arWrite(t, filepath.Join(src, "a/other/x"), arRandom(3<<20, 5)) // chunked
	arWrite(t, filepath.Join(src, "top.txt"), []byte("top"))
	if err := os.Mkdir(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	return src
}

// Below the target every directory of an unchanged re-backup takes the
// parent's tree: no tree is built or saved there. Only the directories
// leading to the target (whose metadata others may change, /tmp) may be.
func TestBackupUnchangedReusesTrees(t *testing.T) {
	r, _ := arNewRepo(t)
	src := arReuseTree(t)
	first, _ := arBackup(t, r, []string{src}, ArchiveOptions{})
	second, a := arBackup(t, r, []string{src}, ArchiveOptions{Parent: first})

	srcTree := *arLookup(t, r, *first.Tree, src).Subtree
	if got := *arLookup(t, r, *second.Tree, src).Subtree; got != srcTree {
		t.Fatalf("target's tree %v, want the parent's %v", got.Str(), srcTree.Str())
	}
	inside := len(arTreeIDs(t, r, srcTree, "/", nil)) // src, a, a/b, a/b/c, a/other, empty
	above := strings.Count(src, "/")                  // "/" and the directories leading to src
	if got := a.st.treesReused.Load(); got < int64(inside) || got > int64(inside+above) {
		t.Errorf("%d trees reused, want %d to %d", got, inside, inside+above)
	}
	if got := second.Summary.TreeBlobs; got > above {
		t.Errorf("%d new tree blobs, want at most the %d above the target", got, above)
	}
	if s := second.Summary; s.FilesUnmodified != 4 || s.FilesNew+s.FilesChanged != 0 {
		t.Errorf("summary %+v: want 4 files unmodified", s)
	}
}

// A file changed deep in the tree gives new trees for the directories from
// it up to the root and for nothing else; a directory whose own metadata
// changed keeps its tree and gives its parent a new one. The result is the
// same tree as a backup without a parent.
func TestBackupChangeRebuildsOnlyItsPath(t *testing.T) {
	r, _ := arNewRepo(t)
	src := arReuseTree(t)
	first, _ := arBackup(t, r, []string{src}, ArchiveOptions{})
	firstSrc := *arLookup(t, r, *first.Tree, src).Subtree
	before := arTreeIDs(t, r, firstSrc, "/", nil)

	if err := os.WriteFile(filepath.Join(src, "a/b/c/deep.txt"), []byte("deeper"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "a/other"), 0o700); err != nil {
		t.Fatal(err)
	}
	second, a := arBackup(t, r, []string{src}, ArchiveOptions{Parent: first})
	secondSrc := *arLookup(t, r, *second.Tree, src).Subtree
	after := arTreeIDs(t, r, secondSrc, "/", nil)

	changed := map[string]bool{"/": true, "/a": true, "/a/b": true, "/a/b/c": true}
	for p, id := range after {
		if changed[p] == (id == before[p]) {
			t.Errorf("%s: tree %v, parent's %v; want changed=%v", p, id.Str(), before[p].Str(), changed[p])
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d directories, parent had %d", len(after), len(before))
	}
	if got := arLookup(t, r, *second.Tree, filepath.Join(src, "a/other")).Mode; got.Perm() != 0o700 {
		t.Errorf("a/other mode %v, want the new 0700", got)
	}
	// a/b/c, a/b, a, src: built (only the four and the ones above src).
	if got, above := second.Summary.TreeBlobs, strings.Count(src, "/"); got < 4 || got > 4+above {
		t.Errorf("%d new tree blobs, want 4 to %d", got, 4+above)
	}
	if got := a.st.treesReused.Load(); got < 2 { // a/other, empty
		t.Errorf("%d trees reused, want at least a/other and empty", got)
	}

	fresh, _ := arBackup(t, r, []string{src}, ArchiveOptions{})
	if got := *arLookup(t, r, *fresh.Tree, src).Subtree; got != secondSrc {
		t.Errorf("backup without parent gives tree %v, with parent %v", got.Str(), secondSrc.Str())
	}
}

// arForge rewrites the node at absolute path p in snapshot sn's trees with
// fn and returns a snapshot (not saved) of the new root.
func arForge(t *testing.T, r *repo.Repository, sn *snapshot.Snapshot, p string, fn func(*snapshot.Node)) *snapshot.Snapshot {
	t.Helper()
	ctx := context.Background()
	var rewrite func(id repo.ID, parts []string) repo.ID
	rewrite = func(id repo.ID, parts []string) repo.ID {
		tr, err := snapshot.LoadTree(ctx, r, id)
		if err != nil {
			t.Fatal(err)
		}
		n := tr.Find(parts[0])
		if len(parts) == 1 {
			fn(n)
		} else {
			sub := rewrite(*n.Subtree, parts[1:])
			n.Subtree = &sub
		}
		nid, err := snapshot.SaveTree(ctx, r, tr)
		if err != nil {
			t.Fatal(err)
		}
		return nid
	}
	root := rewrite(*sn.Tree, strings.Split(strings.Trim(p, "/"), "/"))
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	forged := *sn
	forged.Tree = &root
	return &forged
}

// Extended attributes of an inode unchanged since a parent written by
// cairn are the parent's (not read again); a changed ctime or a parent
// written by another program has them read.
func TestBackupXattrsFromParent(t *testing.T) {
	r, _ := arNewRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	file := filepath.Join(src, "f")
	arWrite(t, file, []byte("data"))
	if err := unix.Setxattr(file, "user.real", []byte("1"), 0); err != nil {
		t.Skipf("no user xattrs here: %v", err)
	}
	first, _ := arBackup(t, r, []string{src}, ArchiveOptions{ProgramVersion: "cairn test"})
	xattrs := func(sn *snapshot.Snapshot) string {
		var names []string
		for _, x := range arLookup(t, r, *sn.Tree, file).ExtendedAttributes {
			names = append(names, x.Name+"="+string(x.Value))
		}
		return strings.Join(names, ",")
	}
	if got := xattrs(first); got != "user.real=1" {
		t.Fatalf("first backup: xattrs %q", got)
	}
	// The parent says another attribute: believed while the ctime stands.
	forged := arForge(t, r, first, file, func(n *snapshot.Node) {
		n.ExtendedAttributes = []snapshot.ExtendedAttribute{{Name: "user.parent", Value: []byte("p")}}
	})
	sn, _ := arBackup(t, r, []string{src}, ArchiveOptions{Parent: forged, ProgramVersion: "cairn test"})
	if got := xattrs(sn); got != "user.parent=p" {
		t.Errorf("unchanged inode: xattrs %q, want the parent's", got)
	}
	other := *forged
	other.ProgramVersion = "restic 0.19.1"
	sn, _ = arBackup(t, r, []string{src}, ArchiveOptions{Parent: &other})
	if got := xattrs(sn); got != "user.real=1" {
		t.Errorf("parent by restic: xattrs %q, want those read", got)
	}
	if err := unix.Setxattr(file, "user.real", []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	sn, _ = arBackup(t, r, []string{src}, ArchiveOptions{Parent: forged, ProgramVersion: "cairn test"})
	if got := xattrs(sn); got != "user.real=2" {
		t.Errorf("after setxattr: xattrs %q, want those read", got)
	}
}

// Entries go to the stat workers by the type the listing gave; a file
// replaced by a directory before its lstat is walked as the directory it
// became, and every other entry of the many handed out is there.
func TestBackupFileBecameDirectory(t *testing.T) {
	r, _ := arNewRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	for i := range 3 * statBatchSize {
		arWrite(t, filepath.Join(src, fmt.Sprintf("f%03d", i)), []byte{byte(i)})
	}
	became := filepath.Join(src, "f050")
	afterList = func(dir string) {
		if dir != src {
			return
		}
		if err := os.Remove(became); err != nil {
			t.Error(err)
		}
		arWrite(t, filepath.Join(became, "inside"), []byte("inside"))
	}
	defer func() { afterList = nil }()
	var errs []string
	sn, _ := arBackup(t, r, []string{src}, ArchiveOptions{OnError: func(p string, err error) { errs = append(errs, p+": "+err.Error()) }})
	if len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
	if n := arLookup(t, r, *sn.Tree, filepath.Join(became, "inside")); n.Type != snapshot.NodeFile || n.Size != 6 {
		t.Errorf("inside: %+v", n)
	}
	if n := arLookup(t, r, *sn.Tree, became); n.Type != snapshot.NodeDir {
		t.Errorf("%s: type %v, want dir", became, n.Type)
	}
	if got := len(arList(t, r, *arLookup(t, r, *sn.Tree, src).Subtree, "")); got != 3*statBatchSize+1 {
		t.Errorf("%d entries below src, want %d", got, 3*statBatchSize+1)
	}
}
