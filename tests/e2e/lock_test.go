package e2e

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/testutil"
)

// writeRandom fills dir with n files of size bytes of incompressible data.
func writeRandom(t *testing.T, dir string, seed uint64, n, size int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	buf := make([]byte, size)
	for i := range n {
		rng.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, "f"+string(rune('a'+i))), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// files lists the regular files below dir (relative names).
func files(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out[rel] = true
		}
		return nil
	})
	return out
}

// stoppedBackup starts a backup (args after "backup" come first) and stops
// it with SIGSTOP once it stored a pack and has a temp file in progress,
// before its snapshot exists. It returns the running command and what it
// had stored.
func stoppedBackup(t *testing.T, repoDir, data string, global ...string) (*exec.Cmd, *bytes.Buffer, map[string]bool) {
	t.Helper()
	before := files(t, filepath.Join(repoDir, "data"))
	snapsBefore := len(files(t, filepath.Join(repoDir, "snapshots")))
	// A rate limit makes each pack's upload take a while: the stop lands
	// while a temp file is being written.
	args := append(global, "--pack-size", "4", "--limit-upload", "16384", "backup", data)
	cmd := exec.Command(cairnBin, args...)
	cmd.Env = append(cleanEnv(), "CAIRN_KDF_N=1024", "CAIRN_REPOSITORY="+repoDir, "CAIRN_PASSWORD="+password)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		stored := files(t, filepath.Join(repoDir, "data"))
		tmp := files(t, filepath.Join(repoDir, "tmp"))
		if len(stored) > len(before) && len(tmp) > 0 {
			if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			if len(files(t, filepath.Join(repoDir, "snapshots"))) != snapsBefore {
				t.Fatal("the backup saved its snapshot before it could be stopped; give it more data")
			}
			return cmd, &stderr, files(t, filepath.Join(repoDir, "data"))
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("the backup stored no pack within a minute; stderr:\n%s", stderr.String())
	return nil, nil, nil
}

// ageTemp makes every temp file under tmp/ look two hours old (touch -d).
func ageTemp(t *testing.T, repoDir string) []string {
	t.Helper()
	var names []string
	for rel := range files(t, filepath.Join(repoDir, "tmp")) {
		p := filepath.Join(repoDir, "tmp", rel)
		if out, err := exec.Command("touch", "-d", "2 hours ago", p).CombinedOutput(); err != nil {
			t.Fatalf("touch: %v %s", err, out)
		}
		names = append(names, p)
	}
	return names
}

// A backup paused after it stored packs, before its snapshot: a concurrent
// prune must not remove its packs (it fails on the backup's lock, also when
// the backup was started with --no-lock), opening the repository must not
// remove its temp files however old they look, and after SIGCONT the backup
// finishes and the repository checks clean with cairn and restic.
func TestPausedBackupAndPrune(t *testing.T) {
	for _, tc := range []struct {
		name   string
		global []string
	}{
		{"no-lock", []string{"--no-lock"}},
		{"locked", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			repoDir := filepath.Join(tmp, "repo")
			mustCairn(t, repoDir, "init")
			old := filepath.Join(tmp, "old")
			writeRandom(t, old, 1, 2, 1<<20)
			mustCairn(t, repoDir, "backup", old)
			data := filepath.Join(tmp, "data")
			writeRandom(t, data, 2, 12, 4<<20)

			cmd, stderr, stored := stoppedBackup(t, repoDir, data, tc.global...)
			temps := ageTemp(t, repoDir)
			if len(temps) == 0 {
				t.Fatal("no temp file to age")
			}

			// Other processes open the repository and try to prune.
			mustCairn(t, repoDir, "snapshots")
			res := cairn(t, repoDir, "prune")
			if res.code == 0 || !strings.Contains(res.stderr, "locked") {
				t.Errorf("prune next to a running backup: %v", res)
			}
			res = cairn(t, repoDir, "--no-lock", "prune")
			if res.code == 0 || !strings.Contains(res.stderr, "--no-lock") {
				t.Errorf("prune --no-lock: %v", res)
			}
			now := files(t, filepath.Join(repoDir, "data"))
			for p := range stored {
				if !now[p] {
					t.Errorf("pack %s of the paused backup was removed", p)
				}
			}
			for _, p := range temps {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("temp file %s of the paused backup was removed: %v", p, err)
				}
			}

			if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("backup after SIGCONT: %v\n%s", err, stderr)
			}
			if tc.global != nil && strings.Count(stderr.String(), "--no-lock is ignored") != 1 {
				t.Errorf("--no-lock backup did not say once that it locks anyway:\n%s", stderr)
			}
			mustCairn(t, repoDir, "check", "--read-data")
			if n := len(files(t, filepath.Join(repoDir, "snapshots"))); n != 2 {
				t.Errorf("%d snapshots, want 2", n)
			}
			if _, err := exec.LookPath("restic"); err == nil || os.Getenv("CI") != "" {
				if out, err := testutil.RunRestic(t, repoDir, password, "check", "--read-data"); err != nil {
					t.Errorf("restic check: %v\n%s", err, out)
				}
			}
			// Nothing is left in tmp/ of a finished backup.
			if left := files(t, filepath.Join(repoDir, "tmp")); len(left) != 0 {
				t.Errorf("temp files left: %v", left)
			}
		})
	}
}
