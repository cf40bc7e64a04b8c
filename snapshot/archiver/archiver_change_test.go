package archiver

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// arChangeHook makes the archiver run change on path once, right after its
// first chunk (or the whole small file) is read.
func arChangeHook(t *testing.T, path string, change func(f *os.File) error) {
	t.Helper()
	done := false
	afterFirstRead = func(p string) {
		if p != path || done {
			return
		}
		done = true
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err == nil {
			err = change(f)
			f.Close()
		}
		if err != nil {
			t.Errorf("changing %s: %v", path, err)
		}
	}
	t.Cleanup(func() { afterFirstRead = nil })
}

func arRandomFile(t *testing.T, path string, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{byte(size)})
	rng.Read(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

type arChanges struct{ paths, msgs []string }

func (c *arChanges) opts() ArchiveOptions {
	return ArchiveOptions{
		OnChanged: func(p string, err error) {
			if !errors.Is(err, ErrFileChanged) {
				panic("change not wrapping ErrFileChanged: " + err.Error())
			}
			c.paths = append(c.paths, p)
			c.msgs = append(c.msgs, err.Error())
		},
		OnError: func(p string, err error) { c.msgs = append(c.msgs, "error: "+p+": "+err.Error()) },
	}
}

// A file truncated while it is read is stored as read, reported, and read
// again by the next backup instead of being taken from the parent.
func TestArchiverFileTruncatedWhileRead(t *testing.T) {
	r, _ := arNewRepo(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	orig := arRandomFile(t, big, 8<<20)
	arRandomFile(t, filepath.Join(dir, "quiet"), 3<<20)
	arChangeHook(t, big, func(f *os.File) error { return f.Truncate(1024) })

	var ch arChanges
	sn, a := arBackup(t, r, []string{dir}, ch.opts())
	if a.ChangedCount() != 1 || a.ErrorCount() != 0 || len(ch.paths) != 1 || ch.paths[0] != big {
		t.Fatalf("changed %d, errors %d, reported %q %q; want %s reported once", a.ChangedCount(), a.ErrorCount(), ch.paths, ch.msgs, big)
	}
	if !strings.Contains(ch.msgs[0], "changed while being read") || !strings.Contains(ch.msgs[0], "size 8388608 -> 1024 bytes") {
		t.Errorf("message %q does not say what changed", ch.msgs[0])
	}
	n := arLookup(t, r, *sn.Tree, big)
	got := arContent(t, r, n)
	if uint64(len(got)) != n.Size || len(got) == 0 || len(got) >= len(orig) || !bytes.Equal(got, orig[:len(got)]) {
		t.Fatalf("stored %d bytes (node size %d): want the prefix that was read before the truncation", len(got), n.Size)
	}

	afterFirstRead = nil
	ch = arChanges{}
	opts := ch.opts()
	opts.Parent = sn
	sn2, a2 := arBackup(t, r, []string{dir}, opts)
	if a2.ChangedCount() != 0 || len(ch.msgs) != 0 {
		t.Fatalf("second backup reported %q", ch.msgs)
	}
	if s := sn2.Summary; s.FilesChanged != 1 || s.FilesUnmodified != 1 {
		t.Errorf("second backup: %d changed, %d unmodified; want the torn file read again, the quiet one reused", s.FilesChanged, s.FilesUnmodified)
	}
	if got := arContent(t, r, arLookup(t, r, *sn2.Tree, big)); !bytes.Equal(got, orig[:1024]) {
		t.Errorf("second backup stored %d bytes, want the file's 1024", len(got))
	}
}

func TestArchiverFileChangedWhileRead(t *testing.T) {
	cases := []struct {
		name   string
		size   int
		change func(f *os.File) error
		want   string
	}{
		{"large file appended", 3 << 20, func(f *os.File) error {
			_, err := f.WriteAt(make([]byte, 1<<20), 3<<20)
			return err
		}, "size 3145728 -> 4194304 bytes"},
		{"small file appended", 1000, func(f *os.File) error {
			_, err := f.WriteAt([]byte("more"), 1000)
			return err
		}, "size 1000 -> 1004 bytes"},
		{"small file truncated", 1000, func(f *os.File) error { return f.Truncate(10) }, "size 1000 -> 10 bytes"},
		// Same size: only the times tell. Setting mtime (and so ctime) by
		// hand keeps the test independent of the timestamp granularity.
		{"rewritten in place", 2 << 20, func(f *os.File) error {
			if _, err := f.WriteAt([]byte("rewritten"), 1<<20); err != nil {
				return err
			}
			return os.Chtimes(f.Name(), time.Time{}, time.Unix(1e9, 0))
		}, "modification time changed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := arNewRepo(t)
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			arRandomFile(t, p, c.size)
			arChangeHook(t, p, c.change)
			var ch arChanges
			sn, a := arBackup(t, r, []string{dir}, ch.opts())
			if a.ChangedCount() != 1 || len(ch.msgs) != 1 || !strings.Contains(ch.msgs[0], c.want) {
				t.Fatalf("changed %d, reported %q; want one report saying %q", a.ChangedCount(), ch.msgs, c.want)
			}
			if n := arLookup(t, r, *sn.Tree, p); n.Size == 0 {
				t.Error("changed file not stored")
			}
		})
	}
}

// A file that does not change while it is read is not reported.
func TestArchiverFileQuietNotReported(t *testing.T) {
	r, _ := arNewRepo(t)
	dir := t.TempDir()
	arRandomFile(t, filepath.Join(dir, "a"), 5<<20)
	arRandomFile(t, filepath.Join(dir, "b"), 100)
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var ch arChanges
	_, a := arBackup(t, r, []string{dir}, ch.opts())
	if a.ChangedCount() != 0 || len(ch.msgs) != 0 {
		t.Fatalf("quiet files reported: %q", ch.msgs)
	}
}

// A file in /proc says it has 0 bytes and holds more: not a change.
func TestArchiverProcFileNotReported(t *testing.T) {
	r, _ := arNewRepo(t)
	const p = "/proc/self/status"
	if _, err := os.Stat(p); err != nil {
		t.Skip(err)
	}
	var ch arChanges
	sn, a := arBackup(t, r, []string{p}, ch.opts())
	if a.ChangedCount() != 0 || len(ch.msgs) != 0 {
		t.Fatalf("%s reported: %q", p, ch.msgs)
	}
	if got := arContent(t, r, arLookup(t, r, *sn.Tree, p)); !bytes.Contains(got, []byte("Pid:")) {
		t.Fatalf("stored %q", got)
	}
}

// A small file replaced by another after the walk listed it, before it is
// opened, is stored as read and reported: the node's metadata is the
// listed file's, the content the new one's. A file replaced by a FIFO is
// left out with an error, without hanging.
func TestBackupSmallFileReplacedAfterListing(t *testing.T) {
	r, _ := arNewRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	file := filepath.Join(src, "f")
	fifo := filepath.Join(src, "p")
	arWrite(t, file, []byte("listed content"))
	arWrite(t, fifo, []byte("a file while listed"))
	orig := openFile
	openFile = func(path string) (int, error) {
		switch path {
		case file:
			next := path + ".next"
			arWrite(t, next, []byte("the replacement"))
			if err := os.Rename(next, path); err != nil {
				t.Error(err)
			}
		case fifo:
			os.Remove(path)
			if err := unix.Mkfifo(path, 0o600); err != nil {
				t.Error(err)
			}
		}
		return orig(path)
	}
	t.Cleanup(func() { openFile = orig })
	var ch arChanges
	sn, _ := arBackup(t, r, []string{src}, ch.opts())
	replaced := false
	for _, m := range ch.msgs {
		replaced = replaced || strings.HasPrefix(m, "changed while being read (replaced by another file")
	}
	if len(ch.paths) != 1 || ch.paths[0] != file || !replaced {
		t.Errorf("changes reported: %q %q", ch.paths, ch.msgs)
	}
	if got := arContent(t, r, arLookup(t, r, *sn.Tree, file)); string(got) != "the replacement" {
		t.Errorf("stored %q", got)
	}
	found := false
	for _, m := range ch.msgs {
		found = found || strings.Contains(m, "error: "+fifo+": ") && strings.Contains(m, "no longer a regular file")
	}
	if !found {
		t.Errorf("no error for the file that became a FIFO: %q", ch.msgs)
	}
}
