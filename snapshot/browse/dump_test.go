package browse

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/testutil"
)

func brDump(t *testing.T, l *snapshot.TreeLoader, sn *snapshot.Snapshot, p, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Dump(context.Background(), l, NewBlobCache(l.Repository(), 0), *sn.Tree, p, format, &buf, nil); err != nil {
		t.Fatalf("dump %s as %s: %v", p, format, err)
	}
	return buf.Bytes()
}

func TestDumpTarExtractsToOriginal(t *testing.T) {
	l, sn, src := brSnapshot(t)
	archive := filepath.Join(t.TempDir(), "dump.tar")
	if err := os.WriteFile(archive, brDump(t, l, sn, src, ArchiveTar), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if msg, err := exec.Command("tar", "-x", "-f", archive, "-C", out).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, msg)
	}
	// Entries are relative to the parent: the archive holds one top-level
	// directory named like the dumped one.
	if names := readNames(t, out); len(names) != 1 || names[0] != filepath.Base(src) {
		t.Fatalf("archive top level: %v", names)
	}
	n := testutil.CompareTrees(t, src, filepath.Join(out, filepath.Base(src)), testutil.CompareOptions{CompareOwner: true})
	if n < 70 {
		t.Fatalf("compared only %d entries", n)
	}
}

func readNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestDumpTarHeaders(t *testing.T) {
	l, sn, src := brSnapshot(t)
	// Dumping "/" puts the root's entries at the top.
	tr := tar.NewReader(bytes.NewReader(brDump(t, l, sn, "/", ArchiveTar)))
	first, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Split(strings.TrimPrefix(src, "/"), "/")[0] + "/"; first.Name != want {
		t.Fatalf("first entry of the / dump: %q, want %q", first.Name, want)
	}
	// Unicode names, symlinks, modes, owners and sub-second mtimes.
	base := filepath.Base(src)
	seen := map[string]*tar.Header{}
	tr = tar.NewReader(bytes.NewReader(brDump(t, l, sn, src, ArchiveTar)))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name] = h
	}
	uni := path.Join(base, testutil.UnicodeName, testutil.UnicodeName+".txt")
	h := seen[uni]
	if h == nil {
		t.Fatalf("no entry %q", uni)
	}
	fi, _ := os.Lstat(filepath.Join(src, testutil.UnicodeName, testutil.UnicodeName+".txt"))
	if !h.ModTime.Equal(fi.ModTime()) || h.Size != fi.Size() || fs.FileMode(h.Mode).Perm() != fi.Mode().Perm() {
		t.Fatalf("header %+v does not match %v %d %v", h, fi.ModTime(), fi.Size(), fi.Mode())
	}
	if h.Uname != "root" && h.Uid == os.Getuid() && os.Getuid() == 0 {
		t.Fatalf("uname %q for root's file", h.Uname)
	}
	link := seen[path.Join(base, "link-rel")]
	if link == nil || link.Typeflag != tar.TypeSymlink || link.Linkname != "link-target.txt" {
		t.Fatalf("symlink header: %+v", link)
	}
	if d := seen[base+"/deep-1/"]; d == nil || d.Typeflag != tar.TypeDir {
		t.Fatalf("directory header: %+v", d)
	}
}

func TestDumpZip(t *testing.T) {
	l, sn, src := brSnapshot(t)
	data := brDump(t, l, sn, src, ArchiveZip)
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]*zip.File{}
	for _, f := range zr.File {
		entries[f.Name] = f
	}
	checked := 0
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Dir(src), p)
		fi, _ := os.Lstat(p)
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			name += "/"
		}
		f := entries[name]
		if f == nil {
			t.Fatalf("zip lacks %q", name)
		}
		if f.Mode().Perm() != fi.Mode().Perm() || f.Mode().Type() != fi.Mode().Type() {
			t.Fatalf("%s: zip mode %v, want %v", name, f.Mode(), fi.Mode())
		}
		if f.Modified.Unix() != fi.ModTime().Unix() {
			t.Fatalf("%s: zip mtime %v, want %v", name, f.Modified, fi.ModTime())
		}
		var want []byte
		switch {
		case fi.Mode().IsRegular():
			want, _ = os.ReadFile(p)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			want = []byte(target)
		default:
			checked++
			return nil
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: content differs (%v)", name, err)
		}
		checked++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked != len(entries) || checked < 70 {
		t.Fatalf("checked %d entries, the zip has %d", checked, len(entries))
	}
}

func TestDumpFileAndErrors(t *testing.T) {
	l, sn, src := brSnapshot(t)
	p := filepath.Join(src, "large-00.bin")
	want, _ := os.ReadFile(p)
	if got := brDump(t, l, sn, p, ArchiveTar); !bytes.Equal(got, want) {
		t.Fatalf("dump of a file: %d bytes, want %d", len(got), len(want))
	}
	var buf bytes.Buffer
	if err := Dump(context.Background(), l, NewBlobCache(l.Repository(), 0), *sn.Tree, src+"/missing", ArchiveTar, &buf, nil); err == nil {
		t.Fatal("dump of a missing path succeeded")
	}
	if err := Dump(context.Background(), l, NewBlobCache(l.Repository(), 0), *sn.Tree, src, "rar", &buf, nil); err == nil {
		t.Fatal("unknown format accepted")
	}
}
