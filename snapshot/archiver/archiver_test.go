package archiver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/testutil"
	"golang.org/x/sys/unix"
)

// Helpers are prefixed "ar" to stay clear of other tests in this package.

const arPassword = "archiver-test"

func arNewRepo(t testing.TB) (*repo.Repository, string) {
	t.Helper()
	dir := t.TempDir()
	be, err := repo.CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, arPassword, 2,
		repo.Options{KDF: crypto.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

func arBackup(t testing.TB, r *repo.Repository, paths []string, opts ArchiveOptions) (*snapshot.Snapshot, *Archiver) {
	t.Helper()
	a := NewArchiver(r, opts)
	sn, err := a.BackupPaths(context.Background(), paths)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return sn, a
}

// arLookup follows the absolute path p from the tree root.
func arLookup(t testing.TB, r *repo.Repository, root repo.ID, p string) *snapshot.Node {
	t.Helper()
	id := root
	var n *snapshot.Node
	for _, c := range strings.Split(strings.Trim(p, "/"), "/") {
		tr, err := snapshot.LoadTree(context.Background(), r, id)
		if err != nil {
			t.Fatal(err)
		}
		if n = tr.Find(c); n == nil {
			t.Fatalf("%s: %q not in the snapshot", p, c)
		}
		if n.Subtree != nil {
			id = *n.Subtree
		}
	}
	return n
}

// arList returns the paths of all nodes below tree, depth first.
func arList(t testing.TB, r *repo.Repository, tree repo.ID, prefix string) []string {
	t.Helper()
	tr, err := snapshot.LoadTree(context.Background(), r, tree)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range tr.Nodes {
		out = append(out, prefix+"/"+n.Name)
		if n.Subtree != nil {
			out = append(out, arList(t, r, *n.Subtree, prefix+"/"+n.Name)...)
		}
	}
	return out
}

func arContent(t testing.TB, r *repo.Repository, n *snapshot.Node) []byte {
	t.Helper()
	var out []byte
	for _, id := range n.Content {
		b, err := r.LoadBlob(context.Background(), repo.DataBlob, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// arCompareDir checks the stored tree against the directory dir, entry by
// entry: names, types, modes, mtimes, file contents and sizes, symlink
// targets. It returns the number of regular files.
func arCompareDir(t testing.TB, r *repo.Repository, tree repo.ID, dir string) int {
	t.Helper()
	tr, err := snapshot.LoadTree(context.Background(), r, tree)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := readDirEntries(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.name)
	}
	var got []string
	for _, n := range tr.Nodes {
		got = append(got, n.Name)
	}
	if !slices.Equal(got, names) {
		t.Fatalf("%s: tree has %q, directory has %q", dir, got, names)
	}
	files := 0
	for _, n := range tr.Nodes {
		p := filepath.Join(dir, n.Name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if n.Type != nodeType(fi.Mode()) || n.Mode != fi.Mode()&modeMask || !n.ModTime.Equal(fi.ModTime()) {
			t.Errorf("%s: node %s %v %v, file %v %v", p, n.Type, n.Mode, n.ModTime, fi.Mode(), fi.ModTime())
		}
		switch n.Type {
		case snapshot.NodeFile:
			files++
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if n.Content == nil || !bytes.Equal(arContent(t, r, n), want) || n.Size != uint64(len(want)) {
				t.Errorf("%s: stored content (%d blobs, size %d) differs from the file (%d bytes)", p, len(n.Content), n.Size, len(want))
			}
		case snapshot.NodeDir:
			if n.Subtree == nil {
				t.Fatalf("%s: dir without subtree", p)
			}
			files += arCompareDir(t, r, *n.Subtree, p)
		case snapshot.NodeSymlink:
			if target, _ := os.Readlink(p); n.LinkTarget != target {
				t.Errorf("%s: link target %q, want %q", p, n.LinkTarget, target)
			}
		default:
			if n.Content != nil || n.Subtree != nil {
				t.Errorf("%s: %s node with content or subtree", p, n.Type)
			}
		}
	}
	return files
}

func TestBackupRoundTrip(t *testing.T) {
	r, _ := arNewRepo(t)
	src := t.TempDir()
	opt := testutil.DefaultGenOptions(1)
	opt.LargeFiles = []int64{20 << 20}
	testutil.GenTree(t, src, opt)
	if err := unix.Mkfifo(filepath.Join(src, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}

	var prog snapshot.Progress
	sn, a := arBackup(t, r, []string{src}, ArchiveOptions{Progress: &prog, Tags: []string{"t1"}, Hostname: "h"})
	if a.ErrorCount() != 0 {
		t.Fatalf("%d errors", a.ErrorCount())
	}
	if !slices.Equal(sn.Paths, []string{src}) || sn.Hostname != "h" || !slices.Equal(sn.Tags, []string{"t1"}) || sn.ID.IsNull() {
		t.Fatalf("snapshot fields: %+v", sn)
	}
	// The snapshot must be loadable and the same.
	loaded, err := snapshot.LoadSnapshot(context.Background(), r, sn.ID)
	if err != nil || *loaded.Tree != *sn.Tree {
		t.Fatalf("reload snapshot: %v", err)
	}

	// Every directory on the way to src is a dir node.
	root := arLookup(t, r, *sn.Tree, src)
	for p := filepath.Dir(src); p != "/"; p = filepath.Dir(p) {
		if n := arLookup(t, r, *sn.Tree, p); n.Type != snapshot.NodeDir || n.Mode&os.ModeDir == 0 {
			t.Fatalf("%s: %s node, mode %v", p, n.Type, n.Mode)
		}
	}
	files := arCompareDir(t, r, *root.Subtree, src)

	s := sn.Summary
	if s.FilesNew != uint64(files) || s.FilesChanged != 0 || s.FilesUnmodified != 0 || s.TotalFilesProcessed != uint64(files) {
		t.Errorf("summary files: %+v, want %d new", s, files)
	}
	if s.DataBlobs == 0 || s.TreeBlobs == 0 || s.DataAdded == 0 || s.DataAddedPacked == 0 || s.BackupEnd.Before(s.BackupStart) {
		t.Errorf("summary: %+v", s)
	}
	if prog.Files.Load() != uint64(files) || !prog.ScanDone.Load() || prog.TotalFiles.Load() != uint64(files) ||
		prog.TotalBytes.Load() != s.TotalBytesProcessed || prog.Bytes.Load() != s.TotalBytesProcessed {
		t.Errorf("progress files %d/%d bytes %d/%d, summary %d files %d bytes", prog.Files.Load(), prog.TotalFiles.Load(),
			prog.Bytes.Load(), prog.TotalBytes.Load(), files, s.TotalBytesProcessed)
	}
	if a.BytesRead() != s.TotalBytesProcessed {
		t.Errorf("read %d bytes, processed %d", a.BytesRead(), s.TotalBytesProcessed)
	}

	// The big file's blobs are exactly a sequential chunking's, in order:
	// parallel blob workers must not reorder content.
	big := filepath.Join(src, "large-00.bin")
	f, err := os.Open(big)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []repo.ID
	ch := chunk.New(f, r.Config().ChunkerPolynomial)
	buf := make([]byte, chunk.MaxSize)
	for {
		data, err := ch.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, repo.Hash(data))
	}
	if got := arLookup(t, r, *sn.Tree, big).Content; len(want) < 3 || !slices.Equal(got, want) {
		t.Fatalf("large file: %d blobs, sequential chunking gives %d (or they differ)", len(got), len(want))
	}
}

// arSettleAtimes reads every symlink until its atime stays put. readlink
// updates a symlink's atime (once, under relatime) and nothing can prevent
// it, so without this the first backup changes what the second one sees.
func arSettleAtimes(t testing.TB, dir string) {
	t.Helper()
	atime := func(p string) int64 {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Atim.Nano()
	}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return err
		}
		for try := 0; ; try++ {
			before := atime(p)
			if _, err := os.Readlink(p); err != nil {
				return err
			}
			if atime(p) == before {
				return nil
			}
			if try == 20 {
				t.Fatalf("%s: atime keeps changing", p)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func arDirSize(t testing.TB, dir string) int64 {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBackupDedup(t *testing.T) {
	r, dir := arNewRepo(t)
	src := t.TempDir()
	testutil.GenTree(t, src, testutil.DefaultGenOptions(2))
	arSettleAtimes(t, src)
	sn1, _ := arBackup(t, r, []string{src}, ArchiveOptions{})
	size1 := arDirSize(t, dir)
	sn2, a2 := arBackup(t, r, []string{src}, ArchiveOptions{})
	grown := arDirSize(t, dir) - size1
	s := sn2.Summary
	if s.DataBlobs != 0 || s.FilesNew != sn1.Summary.FilesNew || a2.BytesRead() == 0 {
		t.Errorf("second backup without parent: %+v (read %d)", s, a2.BytesRead())
	}
	if grown > 16<<10 {
		t.Errorf("repository grew by %d bytes on an unchanged tree", grown)
	}
	// Reading a file must not change its atime, so even the trees repeat.
	if n1, n2 := arLookup(t, r, *sn1.Tree, src), arLookup(t, r, *sn2.Tree, src); *n1.Subtree != *n2.Subtree {
		t.Errorf("tree of %s changed between backups: %v -> %v", src, n1.Subtree.Str(), n2.Subtree.Str())
	}
}

func TestBackupParent(t *testing.T) {
	r, _ := arNewRepo(t)
	src := t.TempDir()
	opt := testutil.DefaultGenOptions(3)
	testutil.GenTree(t, src, opt)
	arSettleAtimes(t, src)
	sn1, _ := arBackup(t, r, []string{src}, ArchiveOptions{})
	nfiles := sn1.Summary.FilesNew

	sn2, a2 := arBackup(t, r, []string{src}, ArchiveOptions{Parent: sn1})
	s := sn2.Summary
	if a2.BytesRead() != 0 || s.FilesUnmodified != nfiles || s.FilesNew != 0 || s.FilesChanged != 0 || s.DataBlobs != 0 {
		t.Fatalf("unchanged tree with parent: read %d bytes, summary %+v", a2.BytesRead(), s)
	}
	if s.DirsNew != 0 || s.DirsChanged != 0 || s.DirsUnmodified == 0 {
		t.Errorf("dirs: %+v", s)
	}
	if sn2.Parent == nil || *sn2.Parent != sn1.ID {
		t.Errorf("parent not recorded")
	}
	n1, n2 := arLookup(t, r, *sn1.Tree, src), arLookup(t, r, *sn2.Tree, src)
	if *n1.Subtree != *n2.Subtree {
		t.Fatalf("tree of %s changed: %v -> %v", src, n1.Subtree.Str(), n2.Subtree.Str())
	}

	// Change one file: only it is read again.
	changed := filepath.Join(src, "large-00.bin")
	data := bytes.Repeat([]byte("changed "), 100_000)
	if err := os.WriteFile(changed, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sn3, a3 := arBackup(t, r, []string{src}, ArchiveOptions{Parent: sn2})
	s = sn3.Summary
	if a3.BytesRead() != uint64(len(data)) || s.FilesChanged != 1 || s.FilesUnmodified != nfiles-1 || s.DirsChanged == 0 {
		t.Fatalf("one changed file: read %d bytes (want %d), summary %+v", a3.BytesRead(), len(data), s)
	}
	if got := arContent(t, r, arLookup(t, r, *sn3.Tree, changed)); !bytes.Equal(got, data) {
		t.Fatal("changed file stored wrongly")
	}
}

// arHook swaps openFile/openDir for the test's duration.
func arHook(t *testing.T, file func(string) (int, error), dir func(string) (*os.File, error)) {
	oldFile, oldDir := openFile, openDir
	t.Cleanup(func() { openFile, openDir = oldFile, oldDir })
	if file != nil {
		openFile = file
	}
	if dir != nil {
		openDir = dir
	}
}

func TestBackupUnreadable(t *testing.T) {
	r, _ := arNewRepo(t)
	src := t.TempDir()
	for _, p := range []string{"a/ok.txt", "a/bad.txt", "b/inner.txt", "c.txt"} {
		p = filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("content of "+p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bad, badDir := filepath.Join(src, "a/bad.txt"), filepath.Join(src, "b")
	errInjected := errors.New("injected read error")
	origFile, origDir := openFile, openDir
	arHook(t, func(p string) (int, error) {
		if p == bad {
			return -1, errInjected
		}
		return origFile(p)
	}, func(p string) (*os.File, error) {
		if p == badDir {
			return nil, errInjected
		}
		return origDir(p)
	})
	var reported []string
	sn, n, err := Backup(context.Background(), r, []string{src}, ArchiveOptions{
		OnError: func(p string, err error) {
			if !errors.Is(err, errInjected) {
				t.Errorf("%s: unexpected error %v", p, err)
			}
			reported = append(reported, p)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(reported)
	if n != 2 || !slices.Equal(reported, []string{bad, badDir}) {
		t.Fatalf("error count %d, reported %q", n, reported)
	}
	tr, err := snapshot.LoadTree(context.Background(), r, *arLookup(t, r, *sn.Tree, filepath.Join(src, "a")).Subtree)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Nodes) != 1 || tr.Nodes[0].Name != "ok.txt" {
		t.Fatalf("dir a holds %d nodes, want only ok.txt", len(tr.Nodes))
	}
	tr, _ = snapshot.LoadTree(context.Background(), r, *arLookup(t, r, *sn.Tree, src).Subtree)
	if tr.Find("b") != nil || tr.Find("c.txt") == nil {
		t.Fatal("unreadable dir b stored, or c.txt missing")
	}
}

// A file that is larger when read than lstat said is stored as read, cut
// by the chunker like any large file.
func TestBackupFileGrew(t *testing.T) {
	r, _ := arNewRepo(t)
	src := t.TempDir()
	small := filepath.Join(src, "small")
	if err := os.WriteFile(small, []byte("tiny"), 0o644); err != nil {
		t.Fatal(err)
	}
	grown := filepath.Join(t.TempDir(), "grown")
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	if err := os.WriteFile(grown, data, 0o644); err != nil {
		t.Fatal(err)
	}
	origFile := openFile
	arHook(t, func(p string) (int, error) {
		if p == small {
			p = grown
		}
		return origFile(p)
	}, nil)
	sn, _ := arBackup(t, r, []string{src}, ArchiveOptions{})
	n := arLookup(t, r, *sn.Tree, small)
	if n.Size != uint64(len(data)) || !bytes.Equal(arContent(t, r, n), data) {
		t.Fatalf("grown file: size %d, %d blobs", n.Size, len(n.Content))
	}
}

func arRandom(n int, seed uint64) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

func arWrite(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
