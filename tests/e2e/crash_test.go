package e2e

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/testutil"
)

// A backup killed with SIGKILL at random points leaves a repository that
// cairn and restic accept, and the next backup succeeds.
func TestKilledBackup(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	testutil.ResticBin(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	o := testutil.DefaultGenOptions(21)
	o.SmallFiles = 3000
	o.LargeFiles = []int64{60 << 20, 40 << 20, 30 << 20}
	testutil.GenTree(t, src, o)
	repoDir := filepath.Join(tmp, "repo")
	mustCairn(t, repoDir, "init")

	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	const runs = 6
	killed := 0
	for i := 0; i < runs; i++ {
		// New random data per run, so each backup has packs to write (the rest
		// deduplicates and is quick) and the kill lands mid-way.
		fresh := make([]byte, 30<<20)
		rand.NewChaCha8([32]byte{byte(i), 1}).Read(fresh)
		os.WriteFile(filepath.Join(src, "run.bin"), fresh, 0o644)
		cmd := exec.Command(cairnBin, "backup", "--force", src)
		cmd.Env = append(cleanEnv(), "CAIRN_REPOSITORY="+repoDir, "CAIRN_PASSWORD="+password, "CAIRN_KDF_N=1024")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(10+rnd.IntN(400)) * time.Millisecond
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done: // finished before the kill: fine, try again
		case <-time.After(delay):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			killed++
		}
		r := cairn(t, repoDir, "check")
		if r.code != 0 {
			t.Fatalf("run %d (killed after %v): cairn check: %v", i, delay, r)
		}
		// restic 0.14 does not skip the dead process's lock on its own (nor
		// after a crash of restic itself), so check without locking here.
		if out, err := testutil.RunRestic(t, repoDir, password, "--no-lock", "check"); err != nil {
			t.Fatalf("run %d (killed after %v): restic check: %v\n%s", i, delay, err, out)
		}
	}
	if killed == 0 {
		t.Fatal("no backup was killed; the data set is too small")
	}
	mustCairn(t, repoDir, "backup", src)
	mustCairn(t, repoDir, "check", "--read-data")
	// cairn unlock removes only stale locks; then restic locks normally.
	mustCairn(t, repoDir, "unlock")
	if out, err := testutil.RunRestic(t, repoDir, password, "check", "--read-data"); err != nil {
		t.Fatalf("restic check --read-data: %v\n%s", err, out)
	}
	target := filepath.Join(tmp, "restore")
	mustCairn(t, repoDir, "restore", "latest", "--target", target)
	testutil.CompareTrees(t, src, filepath.Join(target, src), testutil.CompareOptions{})
}
