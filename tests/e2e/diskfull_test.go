package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A backup onto a full disk fails with a message that says truthfully what
// is left: no temp files, and packs stored before the failure stay until a
// prune (never "nothing was written" when something was).
func TestDiskFullBackup(t *testing.T) {
	tmp := t.TempDir()
	mnt := filepath.Join(tmp, "small")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", mnt).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		t.Skipf("cannot mount a small tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	repoDir := filepath.Join(mnt, "repo")
	mustCairn(t, repoDir, "init")
	data := filepath.Join(tmp, "data")
	writeRandom(t, data, 3, 8, 4<<20)

	res := cairn(t, repoDir, "--pack-size", "4", "backup", data)
	if res.code == 0 {
		t.Fatalf("a backup of 32 MiB onto 12 MiB succeeded: %v", res)
	}
	if !strings.Contains(res.stderr, "no space left on device") || !strings.Contains(res.stderr, "disk is full") {
		t.Errorf("the message does not say the disk is full:\n%s", res.stderr)
	}
	if strings.Contains(res.stderr, "nothing was written") {
		t.Errorf("the message claims nothing was written:\n%s", res.stderr)
	}
	if left := files(t, filepath.Join(repoDir, "tmp")); len(left) != 0 {
		t.Errorf("temp files left after the failed backup: %v", left)
	}
	packs := files(t, filepath.Join(repoDir, "data"))
	if len(packs) > 0 && !strings.Contains(res.stderr, "prune") {
		t.Errorf("%d packs stay in the repository, but the message does not say how they go:\n%s", len(packs), res.stderr)
	}
	if n := len(files(t, filepath.Join(repoDir, "snapshots"))); n != 0 {
		t.Errorf("%d snapshots after a failed backup", n)
	}
	t.Logf("left behind: %d packs; message: %s", len(packs), strings.TrimSpace(res.stderr))
	// With space again, prune removes what the failed run left and the
	// repository checks clean.
	if err := exec.Command("mount", "-o", "remount,size=128m", mnt).Run(); err != nil {
		t.Fatal(err)
	}
	mustCairn(t, repoDir, "prune")
	if n := len(files(t, filepath.Join(repoDir, "data"))); n != 0 {
		t.Errorf("%d packs after prune", n)
	}
	mustCairn(t, repoDir, "backup", data)
	mustCairn(t, repoDir, "check", "--read-data")
}
