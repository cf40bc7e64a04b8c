package restorer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/testutil"
	"golang.org/x/sys/unix"
)

// Restores of valid trees into targets that are hostile or change
// underneath, with openat2 and with the O_NOFOLLOW walk forced.

// hsBuilder saves hand-made trees.
type hsBuilder struct {
	t *testing.T
	r *repo.Repository
}

func hsNew(t *testing.T) *hsBuilder {
	r, _ := rtNewRepo(t, 2, 1<<20)
	return &hsBuilder{t: t, r: r}
}

var hsTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func (b *hsBuilder) file(name, data string) *snapshot.Node {
	n := &snapshot.Node{Name: name, Type: snapshot.NodeFile, Mode: 0o644, ModTime: hsTime, Size: uint64(len(data)), Content: []repo.ID{}}
	if data != "" {
		id, _, _, err := b.r.SaveBlob(context.Background(), repo.DataBlob, []byte(data), repo.ID{})
		must(b.t, err)
		n.Content = append(n.Content, id)
	}
	return n
}

func (b *hsBuilder) tree(nodes ...*snapshot.Node) repo.ID {
	tr := &snapshot.Tree{Nodes: nodes}
	tr.Sort()
	id, err := snapshot.SaveTree(context.Background(), b.r, tr)
	must(b.t, err)
	return id
}

func (b *hsBuilder) dir(name string, nodes ...*snapshot.Node) *snapshot.Node {
	id := b.tree(nodes...)
	return &snapshot.Node{Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, ModTime: hsTime, Subtree: &id}
}

func (b *hsBuilder) snapshot(nodes ...*snapshot.Node) *snapshot.Snapshot {
	id := b.tree(nodes...)
	must(b.t, b.r.Flush(context.Background()))
	return &snapshot.Snapshot{Tree: &id}
}

// outsideDir makes a directory next to the target holding one file, and
// returns a function that fails the test if anything in it changed.
func outsideDir(t *testing.T) (string, func()) {
	dir := filepath.Join(t.TempDir(), "outside")
	must(t, os.Mkdir(dir, 0o711))
	must(t, os.WriteFile(filepath.Join(dir, "file"), []byte("precious"), 0o640))
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, os.Chtimes(filepath.Join(dir, "file"), old, old))
	must(t, os.Chtimes(dir, old, old))
	return dir, func() {
		t.Helper()
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) != 1 || ents[0].Name() != "file" {
			t.Errorf("outside directory changed: %v %v", ents, err)
		}
		for _, p := range []string{dir, filepath.Join(dir, "file")} {
			fi, err := os.Lstat(p)
			if err != nil || !fi.ModTime().Equal(old) {
				t.Errorf("%s changed: %v %v", p, fi, err)
				continue
			}
			if want := map[bool]os.FileMode{true: os.ModeDir | 0o711, false: 0o640}[p == dir]; fi.Mode() != want {
				t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "file")); string(b) != "precious" {
			t.Errorf("outside file now holds %q", b)
		}
	}
}

// bothModes runs f with openat2 and with the component walk.
func bothModes(t *testing.T, f func(t *testing.T)) {
	t.Run("openat2", f)
	t.Run("walk", func(t *testing.T) {
		forceDirWalk = true
		defer func() { forceDirWalk = false }()
		f(t)
	})
}

func setHook(t *testing.T, f func(rs *restorer)) {
	testHookAfterPlan = f
	t.Cleanup(func() { testHookAfterPlan = nil })
}

// TestRestoreSwapDirForSymlink replaces a planned directory by a symlink to
// outside between the tree pass and the data pass: nothing may land outside.
func TestRestoreSwapDirForSymlink(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		b := hsNew(t)
		sn := b.snapshot(b.dir("d", b.file("f", "payload"), b.file("empty", ""), b.dir("sub", b.file("g", "more"))), b.file("ok", "fine"))
		outside, unchanged := outsideDir(t)
		target := filepath.Join(t.TempDir(), "t")
		setHook(t, func(rs *restorer) {
			must(t, os.Rename(filepath.Join(target, "d"), filepath.Join(target, "moved")))
			must(t, os.Symlink(outside, filepath.Join(target, "d")))
			rs.fs.dropCache() // as if evicted: the next use walks again
		})
		n, failed := rtRestore(t, b.r, sn, "", RestoreOptions{Target: target})
		unchanged()
		if n == 0 || failed["/d/f"] == nil || failed["/d/sub/g"] == nil || failed["/d"] == nil {
			t.Errorf("want /d, /d/f and /d/sub/g failed, got %d: %v", n, failed)
		}
		if !errors.Is(failed["/d/f"], errSymlinkInPath) {
			t.Errorf("/d/f: %v", failed["/d/f"])
		}
		if b, err := os.ReadFile(filepath.Join(target, "ok")); string(b) != "fine" {
			t.Errorf("ok: %q %v", b, err)
		}
		if fi, err := os.Lstat(filepath.Join(target, "d")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("d: %v %v", fi, err)
		}
	})
}

// TestRestoreOverExistingSymlinks: a target holding symlinks to outside
// where the snapshot has a directory, a file, a hard link and a symlink.
func TestRestoreOverExistingSymlinks(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		b := hsNew(t)
		first := b.file("first", "linked")
		first.Links, first.Inode, first.DeviceID = 2, 77, 1
		second := b.file("second", "linked")
		second.Links, second.Inode, second.DeviceID = 2, 77, 1
		link := &snapshot.Node{Name: "l", Type: snapshot.NodeSymlink, Mode: os.ModeSymlink | 0o777, ModTime: hsTime, LinkTarget: "../../.."}
		fifo := &snapshot.Node{Name: "fifo", Type: snapshot.NodeFifo, Mode: os.ModeNamedPipe | 0o600, ModTime: hsTime}
		sn := b.snapshot(b.dir("d", b.file("f", "payload")), b.file("file", "new"), first, second, link, fifo, b.file("blocker", "now a file"))
		outside, unchanged := outsideDir(t)
		target := filepath.Join(t.TempDir(), "t")
		must(t, os.Mkdir(target, 0o755))
		for _, name := range []string{"d", "second", "l", "fifo"} {
			must(t, os.Symlink(outside, filepath.Join(target, name)))
		}
		must(t, os.Symlink(filepath.Join(outside, "file"), filepath.Join(target, "file")))
		// A directory where a file goes is removed with its contents,
		// without following the symlinks inside it.
		must(t, os.MkdirAll(filepath.Join(target, "blocker", "sub"), 0o755))
		must(t, os.Symlink(outside, filepath.Join(target, "blocker", "s")))
		must(t, os.Symlink(outside, filepath.Join(target, "blocker", "sub", "s")))
		must(t, os.WriteFile(filepath.Join(target, "blocker", "sub", "x"), nil, 0o644))
		n, failed := rtRestore(t, b.r, sn, "", RestoreOptions{Target: target})
		unchanged()
		if n != 0 {
			t.Errorf("%d failures: %v", n, failed)
		}
		for name, want := range map[string]string{"d/f": "payload", "file": "new", "second": "linked", "blocker": "now a file"} {
			if b, err := os.ReadFile(filepath.Join(target, name)); string(b) != want {
				t.Errorf("%s: %q %v", name, b, err)
			}
		}
		if got, _ := os.Readlink(filepath.Join(target, "l")); got != "../../.." {
			t.Errorf("symlink target %q", got)
		}
		if fi, err := os.Lstat(filepath.Join(target, "fifo")); err != nil || fi.Mode() != os.ModeNamedPipe|0o600 {
			t.Errorf("fifo: %v %v", fi, err)
		}
		sameInode(t, filepath.Join(target, "first"), filepath.Join(target, "second"))
	})
}

// TestRestoreCycle: a tree that contains itself is one failure, not an
// endless restore. Tree IDs are hashes of their content, checked on load,
// so a real repository cannot hold a cycle; the detection is a second
// line, tested here by placing a forged tree in the loader's cache.
func TestRestoreCycle(t *testing.T) {
	b := hsNew(t)
	self := repo.Hash([]byte("forged tree"))
	forged := &snapshot.Tree{Nodes: []*snapshot.Node{
		{Name: "loop", Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, ModTime: hsTime, Subtree: &self},
		b.file("x", "data"),
	}}
	sn := b.snapshot(&snapshot.Node{Name: "top", Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, ModTime: hsTime, Subtree: &self})
	target := filepath.Join(t.TempDir(), "t")
	var failed []string
	rs, err := newRestorer(b.r, RestoreOptions{Target: target, OnError: func(p string, err error) {
		failed = append(failed, p+": "+err.Error())
	}})
	must(t, err)
	rs.loader.Add(self, forged)
	must(t, rs.run(context.Background(), sn, ""))
	if len(failed) != 1 || !strings.HasPrefix(failed[0], "/top/loop: tree "+self.Str()+" contains itself") {
		t.Errorf("failures: %q", failed)
	}
	if b, err := os.ReadFile(filepath.Join(target, "top", "x")); string(b) != "data" {
		t.Errorf("x: %q %v", b, err)
	}
}

// openDeep opens rel below root one component at a time (the path is too
// long for one open).
func openDeep(t *testing.T, root, rel string) []byte {
	t.Helper()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	parts := strings.Split(rel, "/")
	for _, p := range parts[:len(parts)-1] {
		next, err := unix.Openat(fd, p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		unix.Close(fd)
		must(t, err)
		fd = next
	}
	ffd, err := unix.Openat(fd, parts[len(parts)-1], unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	unix.Close(fd)
	must(t, err)
	f := os.NewFile(uintptr(ffd), rel)
	defer f.Close()
	buf := make([]byte, 100)
	n, _ := f.Read(buf)
	return buf[:n]
}

func openFds(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	must(t, err)
	return len(ents)
}

// TestRestoreDeepTree restores 2000 nested directories (a path of 6000
// bytes, longer than PATH_MAX) with a file at each of a few levels, holding
// a bounded number of descriptors.
func TestRestoreDeepTree(t *testing.T) {
	bothModes(t, func(t *testing.T) {
		b := hsNew(t)
		const depth = 2000
		node := b.dir("dd", b.file("bottom", "deep"))
		for i := depth - 1; i > 0; i-- {
			kids := []*snapshot.Node{node}
			if i%500 == 0 {
				kids = append(kids, b.file("f", "level"))
			}
			node = b.dir("dd", kids...)
		}
		sn := b.snapshot(node)
		target := filepath.Join(t.TempDir(), "t")
		before := openFds(t)
		peak := 0
		setHook(t, func(rs *restorer) { peak = openFds(t) })
		n, failed := rtRestore(t, b.r, sn, "", RestoreOptions{Target: target})
		if n != 0 {
			t.Fatalf("%d failures: %v", n, failed)
		}
		if peak-before > maxOpenDirs+16 {
			t.Errorf("%d descriptors open after planning, %d before", peak, before)
		}
		if after := openFds(t); after > before {
			t.Errorf("%d descriptors leaked", after-before)
		}
		rel := strings.Repeat("dd/", depth) + "bottom"
		if got := openDeep(t, target, rel); string(got) != "deep" {
			t.Errorf("bottom: %q", got)
		}
		if got := openDeep(t, target, strings.Repeat("dd/", 1500)+"f"); string(got) != "level" {
			t.Errorf("level 1500: %q", got)
		}
	})
}

// TestRestoreWrongBlobLength: an index entry whose uncompressed_length is
// off by one fails the file it belongs to, named, instead of shifting the
// rest of the file; other files are restored.
func TestRestoreWrongBlobLength(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	c := testutil.NewCrafted(t, dir, rtPassword)
	a := bytes.Repeat([]byte("compressible "), 10000)
	bb := bytes.Repeat([]byte("other text "), 10000)
	idA, idB := c.Blob(a), c.Blob(bb)
	long := testutil.CNode{Name: "long", Type: "file", Mode: 0o644, Size: uint64(len(a) + len(bb)), Content: []repo.ID{idA, idB}}
	good := c.File("good", []byte("untouched"))
	root := c.Tree(good, long)
	c.Snapshot(root)
	c.RewriteIndex(func(b map[string]any) {
		if b["id"] == idA.String() {
			b["uncompressed_length"] = b["uncompressed_length"].(float64) + 1
		}
	})
	r := rtOpenRepo(t, dir)
	target := t.TempDir()
	n, failed := rtRestore(t, r, &snapshot.Snapshot{Tree: &root}, "", RestoreOptions{Target: target})
	if n != 1 || !errors.Is(failed["/long"], errBlobSize) {
		t.Fatalf("%d failures: %v", n, failed)
	}
	t.Log(failed["/long"])
	if got, _ := os.ReadFile(filepath.Join(target, "good")); string(got) != "untouched" {
		t.Errorf("good: %q", got)
	}
}

// Root restores entries owned by root into a setgid target whose group is
// another: new entries take the directory's group, so "already ours" does
// not hold there, and each one is given its own owner back.
func TestRestoreOwnerInSetgidTarget(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	b := hsNew(t)
	sn := b.snapshot(b.file("f", "x"), b.dir("d", b.file("g", "y")), &snapshot.Node{Name: "l", Type: snapshot.NodeSymlink, LinkTarget: "f", Mode: os.ModeSymlink | 0o777, ModTime: hsTime})
	target := filepath.Join(t.TempDir(), "target")
	must(t, os.Mkdir(target, 0o755))
	must(t, os.Chown(target, 0, 4321))
	must(t, os.Chmod(target, 0o755|os.ModeSetgid))
	if n, failed := rtRestore(t, b.r, sn, "", RestoreOptions{Target: target}); n != 0 {
		t.Fatalf("%d failures: %v", n, failed)
	}
	for _, p := range []string{"f", "d", "d/g", "l"} {
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(target, p), &st))
		if st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: owner %d:%d, want 0:0 as in the snapshot", p, st.Uid, st.Gid)
		}
	}
}
