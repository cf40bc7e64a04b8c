package browse

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/testutil"
)

// brGenOptions is a small tree with every kind of entry.
func brGenOptions(seed uint64) testutil.GenOptions {
	o := testutil.DefaultGenOptions(seed)
	o.SmallFiles = 60
	o.MaxSmallSize = 16 << 10
	o.LargeFiles = []int64{9<<20 + 777} // over the 8 MiB chunk limit: at least 2 blobs
	return o
}

// brSnapshot generates a tree and backs it up.
func brSnapshot(t *testing.T) (*snapshot.TreeLoader, *snapshot.Snapshot, string) {
	t.Helper()
	r := brNewRepo(t)
	src := t.TempDir()
	testutil.GenTree(t, src, brGenOptions(5))
	sn := brBackup(t, r, src, time.Time{})
	return snapshot.NewTreeLoader(r, 256), sn, src
}

// brWalkSource lists the paths below dir (absolute, slash form), sorted
// like a snapshot walk (depth first, names in byte order).
func brWalkSource(t *testing.T, dir string, recursive bool) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		out = append(out, filepath.ToSlash(p))
		if d.IsDir() && !recursive {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func brLs(t *testing.T, l *snapshot.TreeLoader, sn *snapshot.Snapshot, dir string, recursive bool) ([]string, map[string]*snapshot.Node) {
	t.Helper()
	var paths []string
	nodes := map[string]*snapshot.Node{}
	err := Ls(context.Background(), l, *sn.Tree, dir, recursive, func(p string, n *snapshot.Node) error {
		paths = append(paths, p)
		nodes[p] = n
		return nil
	}, nil)
	if err != nil {
		t.Fatalf("ls %s: %v", dir, err)
	}
	return paths, nodes
}

func TestLs(t *testing.T) {
	l, sn, src := brSnapshot(t)
	got, _ := brLs(t, l, sn, src, false)
	if want := brWalkSource(t, src, false); !slices.Equal(got, want) {
		t.Fatalf("ls %s:\n got %q\nwant %q", src, got, want)
	}
	got, nodes := brLs(t, l, sn, src, true)
	if want := brWalkSource(t, src, true); !slices.Equal(got, want) {
		t.Fatalf("ls -R %s: got %d paths, want %d\n got %q\nwant %q", src, len(got), len(want), got, want)
	}

	// The long format agrees with stat(1) on mode string, owner and size.
	checked := 0
	for _, p := range got {
		n := nodes[p]
		out, err := exec.Command("stat", "-c", "%A %U %G %s %Y", p).Output()
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		f := strings.Fields(string(out))
		line := FormatLong(p, n, nil)
		fields := strings.Fields(line)
		if fields[0] != f[0] || fields[1] != f[1] || fields[2] != f[2] {
			t.Fatalf("%s: ls -l line %q, stat says %q", p, line, out)
		}
		if n.Type == snapshot.NodeFile && fields[3] != f[3] {
			t.Fatalf("%s: size in %q, stat says %s", p, line, f[3])
		}
		if want := n.ModTime.Local().Format(LsTimeFormat); !strings.Contains(line, want) {
			t.Fatalf("%s: %q lacks the mtime %s", p, line, want)
		}
		if n.Type == snapshot.NodeSymlink {
			target, _ := os.Readlink(p)
			if !strings.HasSuffix(line, " "+p+" -> "+target) {
				t.Fatalf("symlink line %q, want it to end in %q", line, p+" -> "+target)
			}
		} else if !strings.HasSuffix(line, " "+p) {
			t.Fatalf("line %q does not end with the path", line)
		}
		checked++
	}
	if checked < 70 {
		t.Fatalf("checked only %d lines", checked)
	}

	// A file path lists just the file; a missing path fails.
	file := filepath.Join(src, "link-target.txt")
	got, _ = brLs(t, l, sn, file, false)
	if !slices.Equal(got, []string{file}) {
		t.Fatalf("ls of a file: %q", got)
	}
	err := Ls(context.Background(), l, *sn.Tree, src+"/nope", false, func(string, *snapshot.Node) error { return nil }, nil)
	if !errors.Is(err, snapshot.ErrPathNotFound) {
		t.Fatalf("ls of a missing path: %v", err)
	}
}

func TestLsJSON(t *testing.T) {
	l, sn, src := brSnapshot(t)
	p := filepath.Join(src, "link-target.txt")
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	buf, err := json.Marshal(NewLsJSON(p, brNode(t, l, sn, p)))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "link-target.txt", "type": "file", "path": p, "struct_type": "node",
		"size": float64(fi.Size()), "mode": float64(uint32(fi.Mode())), "permissions": "-" + fi.Mode().Perm().String()[1:],
		"uid": float64(os.Getuid()), "gid": float64(os.Getgid())}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("json %s = %v, want %v (%s)", k, m[k], v, buf)
		}
	}
	mt, err := time.Parse(time.RFC3339Nano, m["mtime"].(string))
	if err != nil || !mt.Equal(fi.ModTime()) {
		t.Errorf("json mtime %v, want %v", m["mtime"], fi.ModTime())
	}
	for _, k := range []string{"atime", "ctime"} {
		if _, ok := m[k]; !ok {
			t.Errorf("json lacks %s: %s", k, buf)
		}
	}
}

func TestModeString(t *testing.T) {
	for _, c := range []struct {
		n    snapshot.Node
		want string
	}{
		{snapshot.Node{Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755}, "drwxr-xr-x"},
		{snapshot.Node{Type: snapshot.NodeFile, Mode: 0o4755 | os.ModeSetuid}, "-rwsr-xr-x"},
		{snapshot.Node{Type: snapshot.NodeFile, Mode: 0o640 | os.ModeSetgid}, "-rw-r-S---"},
		{snapshot.Node{Type: snapshot.NodeDir, Mode: os.ModeDir | os.ModeSticky | 0o777}, "drwxrwxrwt"},
		{snapshot.Node{Type: snapshot.NodeSymlink, Mode: os.ModeSymlink | 0o777}, "lrwxrwxrwx"},
		{snapshot.Node{Type: snapshot.NodeCharDev, Mode: 0o620}, "crw--w----"},
		{snapshot.Node{Type: snapshot.NodeFifo, Mode: 0o600}, "prw-------"},
	} {
		if got := ModeString(&c.n); got != c.want {
			t.Errorf("ModeString(%v %v) = %s, want %s", c.n.Type, c.n.Mode, got, c.want)
		}
	}
}
