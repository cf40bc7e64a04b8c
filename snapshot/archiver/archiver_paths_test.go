package archiver

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/match"
	"github.com/cairn-backup/cairn/tests/testutil"
)

func TestBackupResticInterop(t *testing.T) {
	testutil.ResticBin(t)
	r, dir := arNewRepo(t)
	src := t.TempDir()
	testutil.GenTree(t, src, testutil.DefaultGenOptions(4))
	sn, _ := arBackup(t, r, []string{src}, ArchiveOptions{})

	if out, err := testutil.RunRestic(t, dir, arPassword, "check", "--read-data"); err != nil {
		t.Fatalf("restic check: %v\n%s", err, out)
	}
	target := t.TempDir()
	if out, err := testutil.RunRestic(t, dir, arPassword, "restore", sn.ID.String(), "--target", target); err != nil {
		t.Fatalf("restic restore: %v\n%s", err, out)
	}
	testutil.CompareTrees(t, src, filepath.Join(target, src), testutil.CompareOptions{})

	// restic cuts the same chunks with the repository's polynomial: backing
	// up the same tree adds no data blobs.
	out, err := testutil.RunRestic(t, dir, arPassword, "backup", "--json", src)
	if err != nil {
		t.Fatalf("restic backup: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, `"message_type":"summary"`) || !strings.Contains(last, `"data_blobs":0,`) {
		t.Fatalf("restic backup of the same tree added data: %s", last)
	}
}

func TestBackupExcludes(t *testing.T) {
	r, _ := arNewRepo(t)
	src := t.TempDir()
	for _, p := range []string{"keep.txt", "drop.log", "sub/keep.txt", "sub/x.log", "cache/big", "sub/cache/y"} {
		p = filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pats := []string{"*.log", filepath.Join(src, "cache")}
	m, err := match.NewMatcher(pats, false)
	if err != nil {
		t.Fatal(err)
	}
	var prog snapshot.Progress
	sn, _ := arBackup(t, r, []string{src}, ArchiveOptions{Excludes: m, ExcludePatterns: pats, Progress: &prog})
	got := arList(t, r, *arLookup(t, r, *sn.Tree, src).Subtree, "")
	want := []string{"/keep.txt", "/sub", "/sub/cache", "/sub/cache/y", "/sub/keep.txt"}
	if !slices.Equal(got, want) || !slices.Equal(sn.Excludes, pats) {
		t.Fatalf("snapshot holds %q, want %q (excludes %q)", got, want, sn.Excludes)
	}
	if prog.TotalFiles.Load() != 3 || sn.Summary.TotalFilesProcessed != 3 {
		t.Errorf("scanned %d files, processed %d; want 3", prog.TotalFiles.Load(), sn.Summary.TotalFilesProcessed)
	}
}

// Several paths merge into one root tree; directories on the way hold only
// what leads to targets; a symlink given as a target stays a symlink.
func TestBackupSeveralPaths(t *testing.T) {
	r, _ := arNewRepo(t)
	base := t.TempDir()
	arWrite(t, filepath.Join(base, "x/data/f1"), []byte("f1"))
	arWrite(t, filepath.Join(base, "x/other"), []byte("not backed up"))
	arWrite(t, filepath.Join(base, "y"), []byte("y"))
	if err := os.Symlink("x", filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	in := []string{base + "/y", base + "/x/data/", base + "/link", base + "/x/data/f1", base + "/./y"}
	sn, a := arBackup(t, r, in, ArchiveOptions{})
	want := []string{base + "/link", base + "/x/data", base + "/x/data/f1", base + "/y"}
	if !slices.Equal(sn.Paths, want) || a.ErrorCount() != 0 {
		t.Fatalf("paths %q, want %q", sn.Paths, want)
	}
	baseNode := arLookup(t, r, *sn.Tree, base)
	if fi, _ := os.Lstat(base); baseNode.Mode != fi.Mode() || !baseNode.ModTime.Equal(fi.ModTime()) {
		t.Errorf("%s: node mode %v mtime %v, directory %v %v", base, baseNode.Mode, baseNode.ModTime, fi.Mode(), fi.ModTime())
	}
	got := arList(t, r, *baseNode.Subtree, "")
	if wantList := []string{"/link", "/x", "/x/data", "/x/data/f1", "/y"}; !slices.Equal(got, wantList) {
		t.Fatalf("tree holds %q, want %q", got, wantList)
	}
	if n := arLookup(t, r, *sn.Tree, base+"/link"); n.Type != snapshot.NodeSymlink || n.LinkTarget != "x" {
		t.Errorf("link stored as %s %q", n.Type, n.LinkTarget)
	}
	if n := arLookup(t, r, *sn.Tree, base+"/y"); string(arContent(t, r, n)) != "y" {
		t.Error("y stored wrongly")
	}
	if _, _, err := Backup(context.Background(), r, []string{base + "/missing"}, ArchiveOptions{}); err == nil {
		t.Error("backup of a missing path succeeded")
	}
}

// The lower-level API composes a snapshot from a stream and a real
// directory, as Kubernetes backups do.
func TestArchiverCompose(t *testing.T) {
	ctx := context.Background()
	r, dir := arNewRepo(t)
	real := t.TempDir()
	arWrite(t, filepath.Join(real, "a/b.txt"), []byte("bee"))
	arWrite(t, filepath.Join(real, "c.txt"), nil)
	data := arRandom(10<<20, 7) // over chunk.MaxSize: at least two chunks

	a := NewArchiver(r, ArchiveOptions{Hostname: "cluster", Tags: []string{"k8s"}})
	content, size, err := a.SaveReader(ctx, bytes.NewReader(data))
	if err != nil || size != uint64(len(data)) || len(content) < 2 {
		t.Fatalf("SaveReader: %v, size %d, %d blobs", err, size, len(content))
	}
	if c, sz, err := a.SaveReader(ctx, bytes.NewReader(nil)); err != nil || sz != 0 || c == nil || len(c) != 0 {
		t.Fatalf("SaveReader(empty): %v %d %v", err, sz, c)
	}
	dn, err := a.SaveDir(ctx, real, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SaveDir(ctx, filepath.Join(real, "c.txt"), nil); err == nil {
		t.Error("SaveDir accepted a file")
	}
	dn.Name = "files"
	now := time.Now()
	vf := &snapshot.Node{Name: "object.json", Type: snapshot.NodeFile, Mode: 0o600, ModTime: now, AccessTime: now, ChangeTime: now,
		Content: content, Size: size}
	root, err := a.SaveTree(ctx, &snapshot.Tree{Nodes: []*snapshot.Node{vf, dn}})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := a.Finish(ctx, root, []string{"/cluster"})
	if err != nil {
		t.Fatal(err)
	}
	if sn.Hostname != "cluster" || sn.Summary == nil || sn.Summary.FilesNew != 2 {
		t.Errorf("snapshot: %+v summary %+v", sn, sn.Summary)
	}
	if n := arLookup(t, r, *sn.Tree, "/object.json"); !bytes.Equal(arContent(t, r, n), data) {
		t.Error("stream content differs")
	}
	arCompareDir(t, r, *arLookup(t, r, *sn.Tree, "/files").Subtree, real)
	if _, err := exec.LookPath("restic"); err == nil {
		if out, err := testutil.RunRestic(t, dir, arPassword, "check", "--read-data"); err != nil {
			t.Fatalf("restic check: %v\n%s", err, out)
		}
	}
}
