package archiver

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sys/unix"
)

func arNode(t *testing.T, p string) *snapshot.Node {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	n, err := NodeFromFileInfo(p, fi, true)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNodeFromFileInfo(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o640|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(file, filepath.Join(dir, "hard")); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2020, 2, 3, 4, 5, 6, 789, time.UTC)
	atime := time.Date(2021, 1, 1, 0, 0, 0, 1, time.UTC)
	if err := os.Chtimes(file, atime, mtime); err != nil {
		t.Fatal(err)
	}
	xattrOK := true
	if err := unix.Setxattr(file, "user.cairn", []byte("v\x00al"), 0); err != nil {
		if !errors.Is(err, unix.ENOTSUP) {
			t.Fatal(err)
		}
		xattrOK = false
	}
	var st unix.Stat_t
	if err := unix.Lstat(file, &st); err != nil {
		t.Fatal(err)
	}

	n := arNode(t, file)
	if n.Name != "f" || n.Type != snapshot.NodeFile || n.Mode != 0o640|os.ModeSetgid || n.Size != 5 || n.Links != 2 ||
		!n.ModTime.Equal(mtime) || !n.AccessTime.Equal(atime) || n.ChangeTime.IsZero() ||
		n.Inode != st.Ino || n.DeviceID != st.Dev || n.UID != st.Uid || n.GID != st.Gid {
		t.Errorf("file node: %+v", n)
	}
	if n.UID == 0 && (n.User != "root" || n.Group != "root") {
		t.Errorf("user/group of root-owned file: %q/%q", n.User, n.Group)
	}
	if xattrOK && (len(n.ExtendedAttributes) != 1 || n.ExtendedAttributes[0].Name != "user.cairn" ||
		string(n.ExtendedAttributes[0].Value) != "v\x00al") {
		t.Errorf("xattrs: %+v", n.ExtendedAttributes)
	}

	if err := os.Symlink("some/target", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	if n := arNode(t, filepath.Join(dir, "l")); n.Type != snapshot.NodeSymlink || n.LinkTarget != "some/target" ||
		n.Mode&os.ModeSymlink == 0 || n.Size != 0 {
		t.Errorf("symlink node: %+v", n)
	}
	if err := os.Chmod(dir, 0o710); err != nil {
		t.Fatal(err)
	}
	if n := arNode(t, dir); n.Type != snapshot.NodeDir || n.Mode != os.ModeDir|0o710 || n.Size != 0 {
		t.Errorf("dir node: %+v (mode %o)", n, n.Mode)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "p"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n := arNode(t, filepath.Join(dir, "p")); n.Type != snapshot.NodeFifo || n.Mode != os.ModeNamedPipe|0o600 {
		t.Errorf("fifo node: %+v", n)
	}
	if _, err := os.Lstat("/dev/null"); err == nil {
		if n := arNode(t, "/dev/null"); n.Type != snapshot.NodeCharDev || n.Device != unix.Mkdev(1, 3) ||
			n.Mode&os.ModeCharDevice == 0 {
			t.Errorf("/dev/null node: %+v", n)
		}
	}
}

// restic keeps names Go-escaped inside the JSON string; odd names must
// survive a round trip and be stored the way restic reads them.
func TestNodeNameEscaping(t *testing.T) {
	for _, name := range []string{`quote"d`, `back\slash`, "tab\tname", "ünï 文件", "bad\xffutf8"} {
		buf, err := json.Marshal(&snapshot.Node{Name: name, Type: snapshot.NodeFile})
		if err != nil {
			t.Fatal(err)
		}
		var raw struct{ Name string }
		if err := json.Unmarshal(buf, &raw); err != nil {
			t.Fatal(err)
		}
		if q := `"` + raw.Name + `"`; q != strconv.Quote(name) {
			t.Errorf("%q stored as %s, want %s", name, q, strconv.Quote(name))
		}
		var n snapshot.Node
		if err := json.Unmarshal(buf, &n); err != nil || n.Name != name {
			t.Errorf("%q read back as %q (%v)", name, n.Name, err)
		}
	}
}
