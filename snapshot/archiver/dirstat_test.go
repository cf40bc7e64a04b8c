package archiver

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

// An entry stat'ed relative to its directory looks exactly as os.Lstat
// shows it, whatever its type and mode bits.
func TestDirStatMatchesLstat(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "file"), []byte("hello"), 0o640))
	must(os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	must(os.Chmod(filepath.Join(dir, "sub"), 0o755|os.ModeSticky|os.ModeSetgid))
	must(os.WriteFile(filepath.Join(dir, "suid"), nil, 0o755))
	must(os.Chmod(filepath.Join(dir, "suid"), 0o755|os.ModeSetuid))
	must(os.Symlink("file", filepath.Join(dir, "link")))
	must(os.Symlink("/nowhere", filepath.Join(dir, "dangling")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	if l, err := net.Listen("unix", filepath.Join(dir, "sock")); err == nil {
		defer l.Close()
	}
	_ = syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, 1<<8|3) // root only
	_ = syscall.Mknod(filepath.Join(dir, "blk"), syscall.S_IFBLK|0o600, 7<<8)    // root only

	ents, err := os.ReadDir(dir)
	must(err)
	d := newDirStat(dir)
	defer d.close()
	if d.fd < 0 {
		t.Fatal("directory not opened")
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		want, err := os.Lstat(p)
		must(err)
		got, err := d.lstat(p, e.Name())
		must(err)
		if got.Name() != want.Name() || got.Mode() != want.Mode() || got.Size() != want.Size() ||
			!got.ModTime().Equal(want.ModTime()) || got.IsDir() != want.IsDir() {
			t.Errorf("%s: got %v %v %d %v, want %v %v %d %v", e.Name(), got.Name(), got.Mode(), got.Size(), got.ModTime(),
				want.Name(), want.Mode(), want.Size(), want.ModTime())
		}
		if !reflect.DeepEqual(got.Sys(), want.Sys()) {
			t.Errorf("%s: Sys %+v, want %+v", e.Name(), got.Sys(), want.Sys())
		}
	}
	if len(ents) < 7 {
		t.Fatalf("only %d entries made", len(ents))
	}

	// A missing entry is a path error naming the whole path.
	_, err = d.lstat(filepath.Join(dir, "gone"), "gone")
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != filepath.Join(dir, "gone") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing entry: %v", err)
	}
	// A directory that cannot be opened falls back to lstat by path.
	gone := newDirStat(filepath.Join(dir, "nodir"))
	if gone.fd >= 0 {
		t.Fatal("opened a directory that does not exist")
	}
	if _, err := gone.lstat(filepath.Join(dir, "nodir", "x"), "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("fallback: %v", err)
	}
}
