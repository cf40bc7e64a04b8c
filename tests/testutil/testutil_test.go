package testutil

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func genPair(t *testing.T, opt GenOptions) (a, b string) {
	t.Helper()
	a, b = filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	GenTree(t, a, opt)
	GenTree(t, b, opt)
	return a, b
}

func TestGenTreeDeterministic(t *testing.T) {
	opt := DefaultGenOptions(42)
	a, b := genPair(t, opt)
	n := CompareTrees(t, a, b, CompareOptions{CompareOwner: true})
	// 200 small + 1 large + 3 empty files, 4 deep + 6 dir-NNN + 3 empty dirs,
	// unicode dir + 7 + 4 unicode/odd files, link-target.txt + 7 symlinks.
	if want := 200 + 1 + 3 + 4 + 6 + 3 + 1 + 7 + 4 + 1 + 7; n != want {
		t.Errorf("compared %d entries, want %d", n, want)
	}

	// Another seed gives another tree.
	c := filepath.Join(t.TempDir(), "c")
	GenTree(t, c, DefaultGenOptions(43))
	if _, diffs, err := DiffTrees(a, c, CompareOptions{}); err != nil || len(diffs) == 0 {
		t.Errorf("trees of seeds 42 and 43: %d diffs, err %v; want differences", len(diffs), err)
	}
}

func TestGenTreeContents(t *testing.T) {
	dir := t.TempDir()
	opt := DefaultGenOptions(7)
	opt.LargeFiles = []int64{1<<20 + 1, 0, 5}
	start := time.Now()
	GenTree(t, dir, opt)
	t.Logf("GenTree took %v", time.Since(start))

	for i, size := range opt.LargeFiles {
		fi, err := os.Stat(filepath.Join(dir, "large-0"+string(rune('0'+i))+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != size {
			t.Errorf("%s: size %d, want %d", fi.Name(), fi.Size(), size)
		}
	}
	links := map[string]string{
		"link-rel":                            "link-target.txt",
		"link-dangling":                       "does-not-exist/nowhere",
		"link-abs":                            "/dev/null",
		"link-abs-dangling":                   "/nonexistent-cairn-testutil/dangling",
		"link-dir":                            "deep-1/deep-2/deep-3/deep-4",
		"deep-1/deep-2/deep-3/deep-4/link-up": "../../../../link-target.txt",
		"link-" + UnicodeName:                 UnicodeName + ".txt",
	}
	for name, want := range links {
		got, err := os.Readlink(filepath.Join(dir, name))
		if err != nil || got != want {
			t.Errorf("readlink %s = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "deep-1/deep-2/deep-3/deep-4/link-up")); err != nil {
		t.Errorf("link-up does not resolve: %v", err)
	}
	for _, n := range unicodeNames {
		if _, err := os.Lstat(filepath.Join(dir, UnicodeName, n)); err != nil {
			t.Error(err)
		}
	}

	modes := map[fs.FileMode]int{}
	mtimes := map[int64]string{}
	var emptyDirs, maxDepth, subsecond int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if prev, dup := mtimes[fi.ModTime().UnixNano()]; dup {
			t.Errorf("%s and %s have the same mtime %v", prev, rel, fi.ModTime())
		}
		mtimes[fi.ModTime().UnixNano()] = rel
		if fi.ModTime().Nanosecond() != 0 {
			subsecond++
		}
		if fi.Mode().Type() == 0 {
			modes[fi.Mode().Perm()]++
		}
		if fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			t.Errorf("%s: mode %v has special bits", rel, fi.Mode())
		}
		if d.IsDir() {
			if ents, _ := os.ReadDir(p); len(ents) == 0 {
				emptyDirs++
			}
			if fi.Mode().Perm()&0o700 != 0o700 {
				t.Errorf("dir %s: mode %v not owner-rwx", rel, fi.Mode())
			}
		}
		maxDepth = max(maxDepth, strings.Count(rel, string(filepath.Separator)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range fileModes {
		if modes[m] == 0 {
			t.Errorf("no file with mode %v", m)
		}
	}
	if emptyDirs < opt.EmptyDirs {
		t.Errorf("%d empty dirs, want >= %d", emptyDirs, opt.EmptyDirs)
	}
	if maxDepth < opt.Depth {
		t.Errorf("max depth %d, want >= %d", maxDepth, opt.Depth)
	}
	if subsecond < len(mtimes)-1 {
		t.Errorf("only %d of %d mtimes have a sub-second part", subsecond, len(mtimes))
	}
}

func TestGenTreePlain(t *testing.T) {
	// No modes, unicode, symlinks or depth: a flat tree of 0644 files.
	dir := t.TempDir()
	GenTree(t, dir, GenOptions{Seed: 1, SmallFiles: 20, EmptyFiles: 2, EmptyDirs: 1})
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 23 {
		t.Errorf("%d entries, want 23", len(ents))
	}
	for _, e := range ents {
		fi, _ := e.Info()
		if want := fs.FileMode(0o644); !e.IsDir() && fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", e.Name(), fi.Mode(), want)
		}
	}
}

// mutateCase changes tree b and says which difference must be reported.
type mutateCase struct {
	name   string
	mutate func(t *testing.T, b string)
	want   string // substring of the single expected difference
	opts   CompareOptions
}

func keepMtime(t *testing.T, p string, f func()) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	f()
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

func TestCompareDetectsDifferences(t *testing.T) {
	opt := DefaultGenOptions(3)
	big := "large-00.bin"
	cases := []mutateCase{
		{name: "changed byte", want: `"large-00.bin": content differs (size 3158073), first at byte 2000001: sha256 a=`,
			mutate: func(t *testing.T, b string) {
				p := filepath.Join(b, big)
				keepMtime(t, p, func() {
					f, err := os.OpenFile(p, os.O_RDWR, 0)
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					var c [1]byte
					if _, err := f.ReadAt(c[:], 2000001); err != nil {
						t.Fatal(err)
					}
					c[0] ^= 0x01
					if _, err := f.WriteAt(c[:], 2000001); err != nil {
						t.Fatal(err)
					}
				})
			}},
		{name: "changed mode", want: `) b=-rw-r---w- (0642)`,
			mutate: func(t *testing.T, b string) {
				if err := os.Chmod(filepath.Join(b, big), 0o642); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "changed mtime by 1ns", want: `"large-00.bin": mtime differs: a=2011-03-`,
			mutate: func(t *testing.T, b string) {
				p := filepath.Join(b, big)
				fi, _ := os.Stat(p)
				mt := fi.ModTime().Add(time.Nanosecond)
				if err := os.Chtimes(p, mt, mt); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "changed dir mtime", want: `"deep-1": mtime differs`,
			mutate: func(t *testing.T, b string) {
				mt := time.Unix(1e9, 0)
				if err := os.Chtimes(filepath.Join(b, "deep-1"), mt, mt); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "changed size", want: `"link-target.txt": size differs: a=100 b=101`,
			mutate: func(t *testing.T, b string) {
				p := filepath.Join(b, "link-target.txt")
				keepMtime(t, p, func() {
					f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
					if err != nil {
						t.Fatal(err)
					}
					f.Write([]byte("x"))
					f.Close()
				})
			}},
		{name: "changed symlink target", want: `"link-rel": symlink target differs: a="link-target.txt" b="other"`,
			opts: CompareOptions{IgnoreRootMeta: true},
			mutate: func(t *testing.T, b string) {
				p := filepath.Join(b, "link-rel")
				fi, err := os.Lstat(p)
				if err != nil {
					t.Fatal(err)
				}
				os.Remove(p)
				if err := os.Symlink("other", p); err != nil {
					t.Fatal(err)
				}
				// Restore the link's own mtime.
				if err := lchtimes(p, fi.ModTime()); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "type changed", want: `"link-target.txt": type differs: a is a regular file, b is a symlink`,
			opts: CompareOptions{IgnoreRootMeta: true},
			mutate: func(t *testing.T, b string) {
				p := filepath.Join(b, "link-target.txt")
				os.Remove(p)
				if err := os.Symlink("x", p); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "missing", want: `"` + UnicodeName + `/日本語ファイル.dat": missing in b (a has a regular file)`,
			opts: CompareOptions{IgnoreDirMtime: true},
			mutate: func(t *testing.T, b string) {
				if err := os.Remove(filepath.Join(b, UnicodeName, "日本語ファイル.dat")); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "extra", want: `"zzz": extra in b (b has a directory)`,
			opts: CompareOptions{IgnoreRootMeta: true},
			mutate: func(t *testing.T, b string) {
				if err := os.Mkdir(filepath.Join(b, "zzz"), 0o755); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "owner", want: `"x": uid differs: a=0 b=12345`,
			opts: CompareOptions{CompareOwner: true},
			mutate: func(t *testing.T, b string) {
				if os.Getuid() != 0 {
					t.Skip("needs root to chown")
				}
				if err := os.Lchown(filepath.Join(b, "x"), 12345, -1); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := opt
			o.SmallFiles = 20
			a, b := genPair(t, o)
			tc.mutate(t, b)
			_, diffs, err := DiffTrees(a, b, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) != 1 || !strings.Contains(diffs[0], tc.want) {
				t.Fatalf("got %d diffs:\n%s\nwant one containing %q", len(diffs), strings.Join(diffs, "\n"), tc.want)
			}
			t.Log(diffs[0])
		})
	}
}

// lchtimes sets the mtime of p without following a symlink.
func lchtimes(p string, mt time.Time) error {
	ts := unix.NsecToTimespec(mt.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

func TestCompareSecondPrecision(t *testing.T) {
	a, b := genPair(t, GenOptions{Seed: 5, SmallFiles: 3})
	ents, _ := os.ReadDir(b)
	for _, e := range append(ents, nil) {
		p := b
		if e != nil {
			p = filepath.Join(b, e.Name())
		}
		fi, _ := os.Stat(p)
		mt := fi.ModTime().Truncate(time.Second)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	if _, diffs, _ := DiffTrees(a, b, CompareOptions{}); len(diffs) != 4 {
		t.Errorf("nanosecond compare: %d diffs, want 4: %q", len(diffs), diffs)
	}
	if n := CompareTrees(t, a, b, CompareOptions{SecondPrecision: true}); n != 3 {
		t.Errorf("compared %d entries, want 3", n)
	}
	if n := CompareTrees(t, a, b, CompareOptions{IgnoreMtime: true}); n != 3 {
		t.Errorf("compared %d entries, want 3", n)
	}
}

func TestCompareIgnore(t *testing.T) {
	a, b := genPair(t, DefaultGenOptions(9))
	if err := os.RemoveAll(filepath.Join(b, "deep-1", "deep-2")); err != nil {
		t.Fatal(err)
	}
	CompareTrees(t, a, b, CompareOptions{
		IgnoreDirMtime: true,
		// link-up lives below deep-2, so the link-dir target is unaffected.
		Ignore: func(rel string) bool { return rel == "deep-1/deep-2" },
	})
}

// fatalTB records a Fatalf and ends the goroutine, like testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = strings.TrimSpace(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

func TestCompareTreesFailsTest(t *testing.T) {
	a, b := genPair(t, GenOptions{Seed: 11, SmallFiles: 40, Modes: true})
	ents, err := os.ReadDir(b)
	if err != nil || len(ents) < 3 {
		t.Fatal(len(ents), err)
	}
	for _, e := range ents[:3] {
		if err := os.Chmod(filepath.Join(b, e.Name()), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		CompareTrees(f, a, b, CompareOptions{MaxDiffs: 2})
		f.msg = "returned"
	}()
	<-done
	if !strings.Contains(f.msg, "3 difference(s)") || !strings.Contains(f.msg, "... and 1 more") ||
		!strings.Contains(f.msg, fmt.Sprintf("%q: mode differs", ents[0].Name())) {
		t.Errorf("unexpected failure message:\n%s", f.msg)
	}
}
