package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/tests/testutil"
	"golang.org/x/sys/unix"
)

// Crafted repositories whose snapshots no file system produces (issue 9):
// `cairn restore`, run as root, must never write, chmod, chown or link
// anything outside its target. Each case records a directory outside the
// target before and after the restore and requires it unchanged, and
// checks the exit code, the item named on stderr and that the rest of the
// snapshot was restored.

// outsideState describes every entry below dir: type, mode, owner, mtime,
// content hash or link target.
func outsideState(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d:%d %d", strings.TrimPrefix(p, dir), fi.Mode(), st.Uid, st.Gid, fi.ModTime().UnixNano())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// makeOutside makes the directory an attacker aims at: files, a subdir,
// owners and modes a restore would change if it reached them.
func makeOutside(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "outside")
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, p := range []string{dir, filepath.Join(dir, "sub")} {
		if err := os.Mkdir(p, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{filepath.Join(dir, "file"), filepath.Join(dir, "sub", "f"), filepath.Join(dir, "pwned")} {
		if err := os.WriteFile(p, []byte("original "+filepath.Base(p)), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{filepath.Join(dir, "file"), filepath.Join(dir, "sub", "f"), filepath.Join(dir, "pwned"), filepath.Join(dir, "sub"), dir} {
		if os.Geteuid() == 0 {
			if err := os.Lchown(p, 4242, 4343); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// hostileCase is one crafted snapshot: build returns the root tree's
// nodes (a good file is added next to them).
type hostileCase struct {
	name    string
	build   func(c *testutil.Crafted, outside string) []testutil.CNode
	prepare func(t *testing.T, c *testutil.Crafted, target, outside string) // before restoring
	code    int                                                             // expected exit code
	stderr  []string                                                        // each must appear on stderr
	check   func(t *testing.T, target, outside string)                      // after restoring
}

func TestHostileRestore(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("hostile restores are tested as root, as restores run on nodes")
	}
	var cycleID repo.ID
	for _, tc := range []hostileCase{
		{
			name: "dir then symlink to outside",
			build: func(c *testutil.Crafted, out string) []testutil.CNode {
				return []testutil.CNode{c.Dir("evil", c.Dir("d", c.File("pwned", []byte("PWNED"))), c.Symlink("d", out))}
			},
			code: 1, stderr: []string{"error: /evil: ", `duplicate name "d"`},
		},
		{
			name: "empty dir then symlink to outside file",
			build: func(c *testutil.Crafted, out string) []testutil.CNode {
				return []testutil.CNode{c.Dir("evil", c.Dir("d"), c.Symlink("d", filepath.Join(out, "file")))}
			},
			code: 1, stderr: []string{"error: /evil: ", `duplicate name "d"`},
		},
		{
			name: "hard link under a dir replaced by a symlink",
			build: func(c *testutil.Crafted, out string) []testutil.CNode {
				f := c.File("file", []byte("linked"))
				f.Links, f.Inode, f.DeviceID = 2, 99, 1
				g := f
				g.Name = "g"
				return []testutil.CNode{c.Dir("evil", c.Dir("a", f), c.Symlink("a", out), g)}
			},
			code: 1, stderr: []string{"error: /evil: ", `duplicate name "a"`},
		},
		{
			name: "file then symlink of the same name",
			build: func(c *testutil.Crafted, out string) []testutil.CNode {
				return []testutil.CNode{c.Dir("evil", c.File("x", []byte("PWNED")), c.Symlink("x", filepath.Join(out, "file")))}
			},
			code: 1, stderr: []string{"error: /evil: ", `duplicate name "x"`},
		},
		{
			name: "symlink then file of the same name",
			build: func(c *testutil.Crafted, out string) []testutil.CNode {
				return []testutil.CNode{c.Dir("evil", c.Symlink("x", filepath.Join(out, "file")), c.File("x", []byte("PWNED")))}
			},
			code: 1, stderr: []string{"error: /evil: ", `duplicate name "x"`},
		},
		{
			name: "two files of the same name",
			build: func(c *testutil.Crafted, out string) []testutil.CNode {
				return []testutil.CNode{c.Dir("evil", c.File("x", []byte("one")), c.File("x", []byte("two")))}
			},
			code: 1, stderr: []string{"error: /evil: ", `duplicate name "x"`},
		},
		{
			name: "hostile names",
			build: func(c *testutil.Crafted, out string) []testutil.CNode {
				rel, err := filepath.Rel("/", out)
				if err != nil {
					t.Fatal(err)
				}
				return []testutil.CNode{
					c.Dir("dotdot", c.File("..", []byte("PWNED"))),
					c.Dir("dot", c.File(".", []byte("PWNED"))),
					c.Dir("slash", c.File("a/b", []byte("PWNED"))),
					c.Dir("updir", c.File("../../../../../../../../"+rel+"/pwned", []byte("PWNED"))),
					c.Dir("nul", c.File("a\x00b", []byte("PWNED"))),
					c.Dir("empty", c.File("", []byte("PWNED"))),
				}
			},
			code: 1,
			stderr: []string{"error: /dotdot: ", `name ".."`, "error: /dot: ", `name "."`, "error: /slash: ", `"a/b" holds a slash`,
				"error: /updir: ", "error: /nul: ", `"a\x00b" holds a slash or NUL`, "error: /empty: ", "empty name"},
		},
		{
			name: "hostile link targets are restored, never followed",
			build: func(c *testutil.Crafted, out string) []testutil.CNode {
				return []testutil.CNode{c.Dir("links", c.Symlink("abs", out), c.Symlink("up", "../../../../../../.."),
					c.Symlink("file", filepath.Join(out, "file")))}
			},
			code: 0,
			check: func(t *testing.T, target, out string) {
				for name, want := range map[string]string{"abs": out, "up": "../../../../../../..", "file": filepath.Join(out, "file")} {
					if got, err := os.Readlink(filepath.Join(target, "links", name)); err != nil || got != want {
						t.Errorf("link %s: %q %v, want %q", name, got, err, want)
					}
				}
			},
		},
		{
			name: "device nodes",
			build: func(c *testutil.Crafted, out string) []testutil.CNode {
				null := testutil.CNode{Name: "null", Type: "chardev", Mode: os.ModeDevice | os.ModeCharDevice | 0o666, Device: unix.Mkdev(1, 3)}
				blk := testutil.CNode{Name: "loop", Type: "dev", Mode: os.ModeDevice | 0o600, Device: unix.Mkdev(7, 200)}
				fifo := testutil.CNode{Name: "fifo", Type: "fifo", Mode: os.ModeNamedPipe | 0o644}
				return []testutil.CNode{c.Dir("dev", blk, fifo, null)}
			},
			code: 0,
			check: func(t *testing.T, target, _ string) {
				for name, want := range map[string]uint32{"null": unix.S_IFCHR, "loop": unix.S_IFBLK, "fifo": unix.S_IFIFO} {
					var st unix.Stat_t
					if err := unix.Lstat(filepath.Join(target, "dev", name), &st); err != nil || st.Mode&unix.S_IFMT != want {
						t.Errorf("%s: mode %o %v", name, st.Mode, err)
					}
				}
			},
		},
		{
			name: "2000 levels deep",
			build: func(c *testutil.Crafted, out string) []testutil.CNode {
				n := c.Dir("dd", c.File("bottom", []byte("deep")))
				for range 1999 {
					n = c.Dir("dd", n)
				}
				return []testutil.CNode{n}
			},
			code: 0,
			check: func(t *testing.T, target, _ string) {
				if n := countEntries(t, target); n != 2000+1+1 {
					t.Errorf("restored %d entries, want 2002", n)
				}
			},
		},
		{
			name: "subtree that refers to itself",
			build: func(c *testutil.Crafted, out string) []testutil.CNode {
				// A tree's ID is its hash, so a real cycle needs a forged
				// index entry: "loop" names an ID the index maps to the
				// bytes of the tree that contains it.
				cycleID = repo.Hash([]byte("forged"))
				top := c.Tree(c.DirOf("loop", cycleID), c.File("x", []byte("data")))
				c.Flush()
				c.AliasBlob(top, cycleID)
				return []testutil.CNode{c.DirOf("top", top)}
			},
			code: 1, stderr: []string{"error: /top/loop: "},
			check: func(t *testing.T, target, _ string) {
				if b, err := os.ReadFile(filepath.Join(target, "top", "x")); string(b) != "data" {
					t.Errorf("top/x: %q %v", b, err)
				}
			},
		},
		{
			name: "target holds a symlink where the snapshot has a directory",
			build: func(c *testutil.Crafted, out string) []testutil.CNode {
				return []testutil.CNode{c.Dir("d", c.File("pwned", []byte("PWNED")), c.Dir("sub", c.File("f", []byte("new"))))}
			},
			prepare: func(t *testing.T, _ *testutil.Crafted, target, out string) {
				if err := os.MkdirAll(target, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(out, filepath.Join(target, "d")); err != nil {
					t.Fatal(err)
				}
			},
			code: 0,
			check: func(t *testing.T, target, _ string) {
				if b, err := os.ReadFile(filepath.Join(target, "d", "sub", "f")); string(b) != "new" {
					t.Errorf("d/sub/f: %q %v", b, err)
				}
				if fi, err := os.Lstat(filepath.Join(target, "d")); err != nil || !fi.IsDir() {
					t.Errorf("d is not a directory: %v %v", fi, err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) { runHostile(t, tc) })
	}
}

func runHostile(t *testing.T, tc hostileCase) {
	tmp := t.TempDir()
	outside := makeOutside(t)
	repoDir := filepath.Join(tmp, "repo")
	c := testutil.NewCrafted(t, repoDir, password)
	nodes := append(tc.build(c, outside), c.File("good", []byte("good data")))
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	snID := c.Snapshot(c.Tree(nodes...))
	target := filepath.Join(tmp, "target")
	if tc.prepare != nil {
		tc.prepare(t, c, target, outside)
	}
	before := outsideState(t, outside)
	r := cairn(t, repoDir, "restore", snID.String(), "--target", target)
	if after := outsideState(t, outside); after != before {
		t.Errorf("the directory outside the target changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if r.code != tc.code {
		t.Errorf("exit code %d, want %d: %v", r.code, tc.code, r)
	}
	for _, want := range tc.stderr {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q: %v", want, r)
		}
	}
	if b, err := os.ReadFile(filepath.Join(target, "good")); string(b) != "good data" {
		t.Errorf("the good file was not restored: %q %v (%v)", b, err, r)
	}
	if tc.check != nil {
		tc.check(t, target, outside)
	}
	if bytes.Contains([]byte(r.stderr), []byte("panic")) {
		t.Errorf("cairn panicked: %v", r)
	}
}

// countEntries counts entries below dir without building paths longer
// than PATH_MAX (it walks by descriptor).
func countEntries(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return countAt(t, fd)
}

func countAt(t *testing.T, fd int) int {
	f := os.NewFile(uintptr(fd), "dir")
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		t.Fatal(err)
	}
	n := len(ents)
	for _, e := range ents {
		if e.IsDir() {
			sub, err := unix.Openat(fd, e.Name(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
			if err != nil {
				t.Fatal(err)
			}
			n += countAt(t, sub)
		}
	}
	return n
}

// TestHostileRestoreWrongLength: an index that gives a blob a wrong
// uncompressed length fails the file it belongs to, named, exit 1; the
// other files are restored intact.
func TestHostileRestoreWrongLength(t *testing.T) {
	tmp := t.TempDir()
	repoDir := filepath.Join(tmp, "repo")
	c := testutil.NewCrafted(t, repoDir, password)
	a := bytes.Repeat([]byte("compressible text "), 20000)
	b := bytes.Repeat([]byte("more text "), 20000)
	idA, idB := c.Blob(a), c.Blob(b)
	long := testutil.CNode{Name: "long", Type: "file", Mode: 0o644, Size: uint64(len(a) + len(b)), Content: []repo.ID{idA, idB}}
	snID := c.Snapshot(c.Tree(c.File("good", []byte("good data")), long))
	c.RewriteIndex(func(blob map[string]any) {
		if blob["id"] == idA.String() {
			blob["uncompressed_length"] = blob["uncompressed_length"].(float64) - 7
		}
	})
	target := filepath.Join(tmp, "target")
	r := cairn(t, repoDir, "restore", snID.String(), "--target", target)
	if r.code != 1 || !strings.Contains(r.stderr, "error: /long: ") || !strings.Contains(r.stderr, "the index says") {
		t.Errorf("want exit 1 naming /long: %v", r)
	}
	if got, err := os.ReadFile(filepath.Join(target, "good")); string(got) != "good data" {
		t.Errorf("good: %q %v", got, err)
	}
}
