package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/tests/testutil"
)

// oneLine fails unless a failed run said exactly one line on stderr that
// contains want.
func oneLine(t *testing.T, r result, want string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("expected failure, got %v", r)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.Contains(strings.ToLower(lines[0]), want) {
		t.Fatalf("want one stderr line containing %q, got %v", want, r)
	}
}

func smallRepo(t *testing.T) (src, repoDir string) {
	tmp := t.TempDir()
	src = filepath.Join(tmp, "src")
	o := testutil.DefaultGenOptions(5)
	o.LargeFiles = []int64{6 << 20, 5 << 20}
	testutil.GenTree(t, src, o)
	repoDir = filepath.Join(tmp, "repo")
	mustCairn(t, repoDir, "init")
	mustCairn(t, repoDir, "backup", src)
	return src, repoDir
}

func TestWrongPasswordAndMissingRepo(t *testing.T) {
	_, repoDir := smallRepo(t)
	r := cairnEnv(t, []string{"CAIRN_REPOSITORY=" + repoDir, "CAIRN_PASSWORD=nope"}, "snapshots")
	oneLine(t, r, "wrong password")
	r = cairn(t, filepath.Join(t.TempDir(), "does-not-exist"), "snapshots")
	oneLine(t, r, "cairn init")
	// Nothing was changed by the failed attempts.
	mustCairn(t, repoDir, "check")
}

func packFiles(t *testing.T, repoDir string) []string {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(repoDir, "data", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("no packs")
	}
	return packs
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += int64(len(buf))
	}
	buf[off] ^= 0x40
	os.Chmod(path, 0o600)
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptPack(t *testing.T) {
	src, repoDir := smallRepo(t)
	// Damage the largest pack (a data pack) in its blob area.
	var victim string
	var size int64
	for _, p := range packFiles(t, repoDir) {
		if fi, _ := os.Stat(p); fi.Size() > size {
			victim, size = p, fi.Size()
		}
	}
	flipByte(t, victim, 100)
	r := cairn(t, repoDir, "check", "--read-data")
	if r.code == 0 || !strings.Contains(r.stderr, filepath.Base(victim)[:8]) {
		t.Fatalf("check --read-data must fail and name pack %s: %v", filepath.Base(victim)[:8], r)
	}
	// Restore fails only the affected files; the rest comes back intact.
	target := filepath.Join(t.TempDir(), "restore")
	r = cairn(t, repoDir, "restore", "latest", "--target", target)
	if r.code == 0 {
		t.Fatalf("restore over a damaged pack succeeded: %v", r)
	}
	_, diffs, err := testutil.DiffTrees(src, filepath.Join(target, src), testutil.CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) == 0 || len(diffs) > 5 {
		t.Fatalf("expected a few damaged files, got %d differences: %v", len(diffs), diffs)
	}
}

func TestMissingAndTruncatedIndex(t *testing.T) {
	src, repoDir := smallRepo(t)
	idx, _ := filepath.Glob(filepath.Join(repoDir, "index", "*"))
	if len(idx) == 0 {
		t.Fatal("no index")
	}
	// Truncated: a clear error naming the file and the way out.
	buf, _ := os.ReadFile(idx[0])
	os.Chmod(idx[0], 0o600)
	os.WriteFile(idx[0], buf[:len(buf)/2], 0o600)
	r := cairn(t, repoDir, "restore", "latest", "--target", t.TempDir())
	oneLine(t, r, "repair index")
	if !strings.Contains(r.stderr, filepath.Base(idx[0])[:8]) {
		t.Fatalf("error does not name the index file: %v", r)
	}
	r = cairn(t, repoDir, "check")
	if r.code == 0 {
		t.Fatalf("check passed with a truncated index: %v", r)
	}
	mustCairn(t, repoDir, "repair", "index")
	mustCairn(t, repoDir, "check", "--read-data")

	// Missing: the data is still in the packs; repair brings it back.
	idx, _ = filepath.Glob(filepath.Join(repoDir, "index", "*"))
	for _, f := range idx {
		os.Remove(f)
	}
	r = cairn(t, repoDir, "restore", "latest", "--target", t.TempDir())
	if r.code == 0 {
		t.Fatalf("restore without an index succeeded: %v", r)
	}
	mustCairn(t, repoDir, "repair", "index")
	target := filepath.Join(t.TempDir(), "restore")
	mustCairn(t, repoDir, "restore", "latest", "--target", target)
	testutil.CompareTrees(t, src, filepath.Join(target, src), testutil.CompareOptions{})
	if out, err := testutil.RunRestic(t, repoDir, password, "check", "--read-data"); err != nil {
		t.Fatalf("restic check after repair: %v\n%s", err, out)
	}
}

func TestUnreadableSource(t *testing.T) {
	src, repoDir := smallRepo(t)
	missing := filepath.Join(t.TempDir(), "vanished")
	r := cairn(t, repoDir, "backup", src, missing)
	if r.code != 3 || !strings.Contains(r.stderr, "vanished") {
		t.Fatalf("backup with an unreadable path: want exit 3 naming it, got %v", r)
	}
	// The readable part was saved.
	target := filepath.Join(t.TempDir(), "restore")
	mustCairn(t, repoDir, "restore", "latest", "--target", target)
	testutil.CompareTrees(t, src, filepath.Join(target, src), testutil.CompareOptions{})
}

// A full disk: one clear line, no temp files left, the repository intact.
func TestFullDisk(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount tmpfs (tests run as root): %v %s", err, out)
		}
		t.Skipf("cannot mount a small tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	repoDir := filepath.Join(mnt, "repo")
	mustCairn(t, repoDir, "init")
	src := filepath.Join(t.TempDir(), "src")
	o := testutil.DefaultGenOptions(9)
	o.LargeFiles = []int64{40 << 20}
	testutil.GenTree(t, src, o)
	r := cairn(t, repoDir, "backup", src)
	oneLine(t, r, "no space left")
	if left := files(t, filepath.Join(repoDir, "tmp")); len(left) != 0 {
		t.Fatalf("temp files left after the failed backup: %v", left)
	}
	mustCairn(t, repoDir, "check")
	if out := mustCairn(t, repoDir, "snapshots", "--json").stdout; strings.TrimSpace(out) != "[]" {
		t.Fatalf("a failed backup left a snapshot: %s", out)
	}
}
