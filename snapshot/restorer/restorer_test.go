package restorer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/match"
	"github.com/cairn-backup/cairn/tests/testutil"
	"golang.org/x/sys/unix"
)

// rtSource generates the standard test tree plus entries GenTree lacks:
// exotic modes, a hard link, a fifo and (as root) a device node.
func rtSource(t *testing.T, large int64, small int) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	opt := testutil.DefaultGenOptions(7)
	opt.SmallFiles, opt.MaxSmallSize = small, 8<<10
	opt.LargeFiles = []int64{large, 1}
	opt.EmptyFiles = 4
	opt.Depth = 12
	testutil.GenTree(t, src, opt)

	extra := filepath.Join(src, "extra")
	must(t, os.Mkdir(extra, 0o755))
	must(t, os.WriteFile(filepath.Join(extra, "x0710"), []byte("exotic"), 0o600))
	must(t, os.Chmod(filepath.Join(extra, "x0710"), 0o710))
	must(t, os.WriteFile(filepath.Join(extra, "linked-a"), bytes.Repeat([]byte("hard"), 5000), 0o640))
	must(t, os.Link(filepath.Join(extra, "linked-a"), filepath.Join(extra, "linked-b")))
	must(t, unix.Mkfifo(filepath.Join(extra, "fifo"), 0o620))
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"sticky", 0o777 | os.ModeSticky}, {"setgid", 0o750 | os.ModeSetgid}, {"d0710", 0o710}} {
		p := filepath.Join(extra, d.name)
		must(t, os.Mkdir(p, 0o700))
		must(t, os.WriteFile(filepath.Join(p, "f"), []byte(d.name), 0o644))
		must(t, os.Chmod(p, d.mode))
	}
	if os.Geteuid() == 0 {
		must(t, unix.Mknod(filepath.Join(extra, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(t, os.Lchown(filepath.Join(extra, "x0710"), 1234, 5678))
	}
	// Distinct, sub-second mtimes for everything added here.
	ts := time.Date(2020, 2, 29, 12, 0, 0, 123456789, time.UTC)
	ents, _ := os.ReadDir(extra)
	for i, e := range append(ents, nil) {
		p := extra
		if e != nil {
			p = filepath.Join(extra, e.Name())
		}
		tt := unix.NsecToTimespec(ts.Add(time.Duration(i) * time.Minute).UnixNano())
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{tt, tt}, unix.AT_SYMLINK_NOFOLLOW))
	}
	return src
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sameInode(t *testing.T, a, b string) {
	t.Helper()
	ia, err := os.Lstat(a)
	must(t, err)
	ib, err := os.Lstat(b)
	must(t, err)
	if !os.SameFile(ia, ib) {
		t.Errorf("%s and %s are not hard-linked", a, b)
	}
}

// TestRestoreSmallWindows restores through windows of a few files each:
// hard links and shared blobs across windows, directory metadata set only
// after everything inside (read-only and sticky directories), verify.
func TestRestoreSmallWindows(t *testing.T) {
	src := rtSource(t, 3<<20+17, 300)
	// The same content in files far apart in the tree: one blob, needed by
	// two windows.
	must(t, os.WriteFile(filepath.Join(src, "aaa-same"), bytes.Repeat([]byte("same"), 3000), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "extra", "zzz-same"), bytes.Repeat([]byte("same"), 3000), 0o444))
	must(t, os.Chmod(filepath.Join(src, "extra"), 0o555))
	defer os.Chmod(filepath.Join(src, "extra"), 0o755)
	r, _ := rtNewRepo(t, 2, 1<<20)
	sn := rtBackup(t, r, src)
	defer func(f, b, i int) { windowFiles, windowBlobs, itemBlobs = f, b, i }(windowFiles, windowBlobs, itemBlobs)
	windowFiles, windowBlobs, itemBlobs = 5, 7, 2
	windows := 0
	setHook(t, func(*restorer) { windows++ })
	target := filepath.Join(t.TempDir(), "target")
	if n, failed := rtRestore(t, r, sn, "", RestoreOptions{Target: target, Verify: true, Workers: 3}); n != 0 {
		t.Fatalf("%d failures: %v", n, failed)
	}
	if windows < 50 {
		t.Errorf("only %d windows", windows)
	}
	out := under(target, src)
	if n := testutil.CompareTrees(t, src, out, testutil.CompareOptions{CompareOwner: true}); n < 300 {
		t.Errorf("compared only %d entries", n)
	}
	sameInode(t, filepath.Join(out, "extra/linked-a"), filepath.Join(out, "extra/linked-b"))
	os.Chmod(filepath.Join(out, "extra"), 0o755)
}

func TestRestoreRoundTrip(t *testing.T) {
	src := rtSource(t, 30<<20+4321, 2000)
	for _, version := range []int{1, 2} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			r, _ := rtNewRepo(t, version, 4<<20)
			sn := rtBackup(t, r, src)
			target := filepath.Join(t.TempDir(), "target")
			prog := &snapshot.Progress{}
			start := time.Now()
			rtRestore(t, r, sn, "", RestoreOptions{Target: target, Verify: true, Progress: prog, Workers: 3})
			t.Logf("restore took %v", time.Since(start))
			out := under(target, src)
			n := testutil.CompareTrees(t, src, out, testutil.CompareOptions{CompareOwner: true})
			if n < 2000 {
				t.Errorf("compared only %d entries", n)
			}
			sameInode(t, filepath.Join(out, "extra/linked-a"), filepath.Join(out, "extra/linked-b"))
			if os.Geteuid() == 0 {
				var st unix.Stat_t
				must(t, unix.Lstat(filepath.Join(out, "extra/null"), &st))
				if st.Rdev != unix.Mkdev(1, 3) {
					t.Errorf("device node rdev %x, want 1,3", st.Rdev)
				}
			}
			if !prog.ScanDone.Load() || prog.Files.Load() != prog.TotalFiles.Load()+1 || // +1: the hard link
				prog.Bytes.Load() != prog.TotalBytes.Load() || prog.TotalBytes.Load() < 30<<20 {
				t.Errorf("progress: files %d/%d bytes %d/%d", prog.Files.Load(), prog.TotalFiles.Load(), prog.Bytes.Load(), prog.TotalBytes.Load())
			}

			// Restoring again over the result overwrites it, without
			// following symlinks planted where files and dirs belong.
			victim := filepath.Join(t.TempDir(), "victim")
			must(t, os.WriteFile(victim, []byte("keep me"), 0o644))
			must(t, os.Remove(filepath.Join(out, "large-00.bin")))
			must(t, os.Symlink(victim, filepath.Join(out, "large-00.bin")))
			must(t, os.RemoveAll(filepath.Join(out, "deep-1")))
			must(t, os.Symlink(filepath.Dir(victim), filepath.Join(out, "deep-1")))
			must(t, os.WriteFile(filepath.Join(out, "link-rel"), []byte("not a link"), 0o644))
			must(t, os.Mkdir(filepath.Join(out, "x.tmp-extra"), 0o755)) // extra entries stay
			rtRestore(t, r, sn, "", RestoreOptions{Target: target})
			if b, _ := os.ReadFile(victim); string(b) != "keep me" {
				t.Errorf("restore wrote through a symlink: victim now %q", b)
			}
			testutil.CompareTrees(t, src, out, testutil.CompareOptions{CompareOwner: true,
				Ignore: func(rel string) bool { return rel == "x.tmp-extra" }})
		})
	}
}

func TestRestoreIncludeExclude(t *testing.T) {
	src := rtSource(t, 1<<20, 200)
	r, _ := rtNewRepo(t, 2, 1<<20)
	sn := rtBackup(t, r, src)
	abs, _ := filepath.Abs(src)

	inc, err := match.NewMatcher([]string{"*.txt"}, false)
	must(t, err)
	exc, err := match.NewMatcher([]string{abs + "/deep-1/deep-2", "file-000*"}, false)
	must(t, err)
	target := t.TempDir()
	rtRestore(t, r, sn, "", RestoreOptions{Target: target, Include: inc, Exclude: exc})
	out := under(target, abs)
	var txt int
	must(t, filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		switch {
		case fi.IsDir():
			if rel == "deep-1/deep-2" || strings.HasPrefix(rel, "deep-1/deep-2/") {
				t.Errorf("excluded %s restored", rel)
			}
			if ents, _ := os.ReadDir(p); len(ents) == 0 {
				t.Errorf("empty directory %s restored though nothing in it was included", rel)
			}
		case !strings.HasSuffix(p, ".txt") || strings.HasPrefix(fi.Name(), "file-000"):
			t.Errorf("%s restored but not included or excluded", rel)
		default:
			txt++
			want, err := os.ReadFile(filepath.Join(abs, rel))
			must(t, err)
			if got, _ := os.ReadFile(p); !bytes.Equal(got, want) {
				t.Errorf("%s: content differs", rel)
			}
		}
		return nil
	}))
	wantTxt := 0
	must(t, filepath.Walk(abs, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(abs, p)
		if err == nil && fi.Mode().IsRegular() && strings.HasSuffix(p, ".txt") &&
			!strings.HasPrefix(fi.Name(), "file-000") && !strings.HasPrefix(rel, "deep-1/deep-2/") {
			wantTxt++
		}
		return err
	}))
	if txt != wantTxt || txt < 10 {
		t.Errorf("%d .txt files restored, want %d", txt, wantTxt)
	}
	// Leading directories get their metadata too.
	testutil.CompareTrees(t, filepath.Join(abs, testutil.UnicodeName), filepath.Join(out, testutil.UnicodeName),
		testutil.CompareOptions{Ignore: func(rel string) bool { return !strings.HasSuffix(rel, ".txt") }})
}

func TestRestoreSubpath(t *testing.T) {
	src := rtSource(t, 1<<20, 100)
	r, _ := rtNewRepo(t, 2, 1<<20)
	sn := rtBackup(t, r, src)
	abs, _ := filepath.Abs(src)

	target := filepath.Join(t.TempDir(), "new", "dir")
	rtRestore(t, r, sn, abs+"/deep-1/", RestoreOptions{Target: target})
	testutil.CompareTrees(t, filepath.Join(abs, "deep-1"), target, testutil.CompareOptions{IgnoreRootMeta: true})

	fileTarget := t.TempDir()
	rtRestore(t, r, sn, abs+"/large-00.bin", RestoreOptions{Target: fileTarget})
	testutil.CompareTrees(t, filepath.Join(abs, "large-00.bin"), filepath.Join(fileTarget, "large-00.bin"), testutil.CompareOptions{})

	_, err := Restore(context.Background(), r, sn, abs+"/nope", RestoreOptions{Target: t.TempDir()})
	if !errors.Is(err, snapshot.ErrPathNotFound) {
		t.Errorf("restore of a missing subpath: %v, want ErrPathNotFound", err)
	}
}

// TestRestoreCorruptPack flips a byte inside one data blob: only the files
// using that blob fail; the rest restore intact.
func TestRestoreCorruptPack(t *testing.T) {
	src := t.TempDir()
	opt := testutil.GenOptions{Seed: 3, SmallFiles: 300, MaxSmallSize: 64 << 10}
	testutil.GenTree(t, src, opt)
	// The same content under two names: one blob, two files to fail.
	b := make([]byte, 100_000)
	_, _ = rand.NewChaCha8([32]byte{3}).Read(b)
	must(t, os.WriteFile(filepath.Join(src, "file-00007.bin"), b, 0o644))
	must(t, os.WriteFile(filepath.Join(src, "copy-of-7"), b, 0o644))

	r, repoDir := rtNewRepo(t, 2, 256<<10)
	sn := rtBackup(t, r, src)
	ctx := context.Background()
	loader := snapshot.NewTreeLoader(r, 16)
	node, err := snapshot.FindNode(ctx, loader, *sn.Tree, src+"/file-00007.bin")
	must(t, err)
	loc := r.LookupBlob(repo.DataBlob, node.Content[0])[0]
	flipByte(t, filepath.Join(repoDir, "data", loc.Pack.String()[:2], loc.Pack.String()), int64(loc.Offset+loc.Length/2))

	target := t.TempDir()
	n, failed := rtRestore(t, r, sn, "", RestoreOptions{Target: target, Verify: true})
	want := []string{src + "/file-00007.bin", src + "/copy-of-7"}
	if n != 2 || failed[want[0]] == nil || failed[want[1]] == nil {
		t.Fatalf("failed %d: %v; want exactly %v", n, failed, want)
	}
	if !errors.Is(failed[want[0]], repo.ErrCorruptPack) {
		t.Errorf("error %v does not wrap ErrCorruptPack", failed[want[0]])
	}
	testutil.CompareTrees(t, src, under(target, src), testutil.CompareOptions{
		IgnoreDirMtime: true, IgnoreRootMeta: true,
		Ignore: func(rel string) bool { return rel == "file-00007.bin" || rel == "copy-of-7" }})

	// A second, intact copy of the blob in another pack rescues both files.
	// Whichever copy the index lists first must be the damaged one. The
	// copy's pack holds more blobs after it, so either way the failure hits
	// the middle of a streamed range.
	more := []repo.ID{node.Content[0]}
	datas := [][]byte{b}
	for _, name := range []string{"file-00000.txt", "file-00001.txt", "file-00002.bin"} {
		n, err := snapshot.FindNode(ctx, loader, *sn.Tree, src+"/"+name)
		must(t, err)
		for _, id := range n.Content {
			data, err := r.LoadBlob(ctx, repo.DataBlob, id, nil)
			must(t, err)
			more, datas = append(more, id), append(datas, data)
		}
	}
	addBlobCopies(t, r, more, datas)
	locs := r.LookupBlob(repo.DataBlob, node.Content[0])
	if locs[0].Pack != loc.Pack {
		flipByte(t, filepath.Join(repoDir, "data", loc.Pack.String()[:2], loc.Pack.String()), int64(loc.Offset+loc.Length/2))
		flipByte(t, filepath.Join(repoDir, "data", locs[0].Pack.String()[:2], locs[0].Pack.String()), int64(locs[0].Offset+locs[0].Length/2))
	}
	target2 := t.TempDir()
	if n, failed := rtRestore(t, r, sn, "", RestoreOptions{Target: target2, Verify: true}); n != 0 {
		t.Fatalf("with a good copy: %d failures: %v", n, failed)
	}
	testutil.CompareTrees(t, src, under(target2, src), testutil.CompareOptions{})
}

func flipByte(t *testing.T, file string, off int64) {
	t.Helper()
	must(t, os.Chmod(file, 0o600)) // pack files are stored read-only
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	var b [1]byte
	_, err = f.ReadAt(b[:], off)
	must(t, err)
	b[0] ^= 0x40
	_, err = f.WriteAt(b[:], off)
	must(t, err)
}

// addBlobCopies stores blobs once more in a pack of their own and indexes
// them, the way a repository with duplicates looks.
func addBlobCopies(t *testing.T, r *repo.Repository, ids []repo.ID, datas [][]byte) {
	t.Helper()
	ctx := context.Background()
	pw := repo.NewPackWriter(repo.DataBlob, 1<<20)
	for i, id := range ids {
		pw.Add(repo.BlobHandle{ID: id, Type: repo.DataBlob}, r.Key().Seal(nil, datas[i]), 0)
	}
	buf, packID, blobs := pw.Finish(r.Key())
	must(t, r.Backend().Save(ctx, repo.Handle{Type: repo.PackFile, Name: packID.String()}, bytes.NewReader(buf), int64(len(buf))))
	r.Index().AddLoaded(blobs)
	r.Index().Sort()
	if locs := r.LookupBlob(repo.DataBlob, ids[0]); len(locs) != 2 || locs[1].Pack != packID && locs[0].Pack != packID {
		t.Fatalf("blob copy not indexed: %v", locs)
	}
}

// TestRestoreVerifyDetectsChange restores, damages a file behind the
// restorer's back, then runs its verification again.
func TestRestoreVerifyDetectsChange(t *testing.T) {
	src := t.TempDir()
	testutil.GenTree(t, src, testutil.GenOptions{Seed: 5, SmallFiles: 20, LargeFiles: []int64{3 << 20}})
	r, _ := rtNewRepo(t, 2, 1<<20)
	sn := rtBackup(t, r, src)
	var failed []string
	rs, err := newRestorer(r, RestoreOptions{Target: t.TempDir(), Verify: true,
		OnError: func(p string, err error) { failed = append(failed, p+": "+err.Error()) }})
	must(t, err)
	ctx := context.Background()
	var files []*fileJob // of every window, as planned
	setHook(t, func(rs *restorer) { files = append(files, rs.win.files...) })
	must(t, rs.run(ctx, sn, src))
	if rs.failures() != 0 {
		t.Fatalf("clean restore failed: %v", failed)
	}
	flipByte(t, filepath.Join(rs.opts.Target, "large-00.bin"), 2<<20+17)
	must(t, os.Truncate(filepath.Join(rs.opts.Target, "file-00003.bin"), 1))
	rs.fs, err = openTargetFS(rs.opts.Target) // run closed it
	must(t, err)
	defer rs.fs.close()
	must(t, rs.verify(ctx, files))
	if rs.failures() != 2 || len(failed) != 2 {
		t.Fatalf("verify after damage: %d failures %v, want 2", rs.failures(), failed)
	}
	for _, name := range []string{"large-00.bin", "file-00003.bin"} {
		if !strings.Contains(strings.Join(failed, "\n"), src+"/"+name+": verify:") {
			t.Errorf("no verify failure for %s in %v", name, failed)
		}
	}
}

// TestRestoreResticRepos restores repositories written by the real restic.
func TestRestoreResticRepos(t *testing.T) {
	testutil.ResticBin(t)
	src := filepath.Join(t.TempDir(), "src")
	opt := testutil.DefaultGenOptions(11)
	opt.LargeFiles = []int64{5<<20 + 3, 0}
	testutil.GenTree(t, src, opt)
	must(t, os.Link(filepath.Join(src, "large-00.bin"), filepath.Join(src, "hardlink")))
	for _, version := range []string{"1", "2"} {
		t.Run("v"+version, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			if _, err := testutil.RunRestic(t, dir, rtPassword, "init", "--repository-version", version); err != nil {
				t.Fatal(err)
			}
			if _, err := testutil.RunRestic(t, dir, rtPassword, "backup", src); err != nil {
				t.Fatal(err)
			}
			r := rtOpenRepo(t, dir)
			sn, err := snapshot.FindSnapshot(context.Background(), r, "latest", snapshot.Filter{})
			must(t, err)
			target := t.TempDir()
			rtRestore(t, r, sn, "", RestoreOptions{Target: target, Verify: true})
			out := under(target, src)
			testutil.CompareTrees(t, src, out, testutil.CompareOptions{CompareOwner: true})
			sameInode(t, filepath.Join(out, "large-00.bin"), filepath.Join(out, "hardlink"))

			sub := t.TempDir()
			rtRestore(t, r, sn, src+"/deep-1", RestoreOptions{Target: sub})
			testutil.CompareTrees(t, filepath.Join(src, "deep-1"), sub, testutil.CompareOptions{IgnoreRootMeta: true})
		})
	}
}

func TestRestoreBadNames(t *testing.T) {
	r, _ := rtNewRepo(t, 2, 1<<20)
	ctx := context.Background()
	id, _, _, err := r.SaveBlob(ctx, repo.DataBlob, []byte("escaped"), repo.ID{})
	must(t, err)
	now := time.Now()
	mk := func(name string) *snapshot.Node {
		return &snapshot.Node{Name: name, Type: snapshot.NodeFile, Mode: 0o644, ModTime: now, AccessTime: now, Content: []repo.ID{id}}
	}
	// A tree holding such names is invalid as a whole: it fails as one
	// item, its siblings are restored.
	for _, bad := range []string{"..", "a/../../b"} {
		badID, err := snapshot.SaveTree(ctx, r, &snapshot.Tree{Nodes: []*snapshot.Node{mk(bad)}})
		must(t, err)
		tree := &snapshot.Tree{Nodes: []*snapshot.Node{{Name: "bad" + strconv.Itoa(len(bad)), Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, Subtree: &badID}, mk("ok")}}
		treeID, err := snapshot.SaveTree(ctx, r, tree)
		must(t, err)
		must(t, r.Flush(ctx))
		parent := t.TempDir()
		target := filepath.Join(parent, "t")
		n, failed := rtRestore(t, r, &snapshot.Snapshot{Tree: &treeID}, "", RestoreOptions{Target: target})
		p := "/bad" + strconv.Itoa(len(bad))
		if n != 1 || !errors.Is(failed[p], snapshot.ErrInvalidTree) {
			t.Errorf("bad name %q: %d failures %v", bad, n, failed)
		}
		if b, err := os.ReadFile(filepath.Join(target, "ok")); err != nil || string(b) != "escaped" {
			t.Errorf("ok: %q %v", b, err)
		}
		if ents, _ := os.ReadDir(parent); len(ents) != 1 {
			t.Errorf("restore escaped its target: %v", ents)
		}
	}
}

func TestRestoreCanceled(t *testing.T) {
	src := t.TempDir()
	testutil.GenTree(t, src, testutil.GenOptions{Seed: 9, SmallFiles: 50})
	r, _ := rtNewRepo(t, 2, 1<<20)
	sn := rtBackup(t, r, src)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Restore(ctx, r, sn, "", RestoreOptions{Target: t.TempDir()})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled restore: %v", err)
	}
}

// TestRestoreCreateModes: files get their modes whether they are created
// with them (fresh directories, modes the umask leaves alone) or chmod'ed
// afterwards (the umask clears bits, special bits, xattrs, a setgid target,
// a directory that was there before), under two umasks.
func TestRestoreCreateModes(t *testing.T) {
	modes := []os.FileMode{0o644, 0o666, 0o777, 0o600, 0o400, 0, 0o755 | os.ModeSetuid, 0o750 | os.ModeSetgid, 0o644 | os.ModeSticky, 0o640}
	b := hsNew(t)
	var files []*snapshot.Node
	for i, m := range modes {
		for _, data := range []string{"", "data"} {
			n := b.file(fmt.Sprintf("f%02d-%d", i, len(data)), data)
			n.Mode = m
			files = append(files, n)
		}
	}
	x := b.file("xattr", "with xattr")
	x.ExtendedAttributes = []snapshot.ExtendedAttribute{{Name: "user.cairn", Value: []byte("v")}}
	files = append(files, x)
	sn := b.snapshot(b.dir("d", files...), b.dir("existing", files...))
	for _, umask := range []int{0o022, 0o027} {
		for _, setgid := range []bool{false, true} {
			t.Run(fmt.Sprintf("umask%03o-setgid%v", umask, setgid), func(t *testing.T) {
				old := unix.Umask(umask)
				defer unix.Umask(old)
				target := filepath.Join(t.TempDir(), "t")
				must(t, os.MkdirAll(filepath.Join(target, "existing"), 0o755))
				if setgid {
					must(t, os.Chmod(target, 0o755|os.ModeSetgid))
				}
				if n, failed := rtRestore(t, b.r, sn, "", RestoreOptions{Target: target}); n != 0 {
					t.Fatalf("%d failures: %v", n, failed)
				}
				for _, dir := range []string{"d", "existing"} {
					for _, n := range files {
						p := filepath.Join(target, dir, n.Name)
						fi, err := os.Lstat(p)
						if err != nil {
							t.Fatal(err)
						}
						if fi.Mode() != n.Mode {
							t.Errorf("%s: mode %v, want %v", p, fi.Mode(), n.Mode)
						}
						if !fi.ModTime().Equal(hsTime) {
							t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), hsTime)
						}
					}
				}
			})
		}
	}
}
