package e2e

import (
	"bufio"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/testutil"
)

// A prune killed with SIGKILL at random points leaves a repository that
// checks clean (unused data allowed) and whose snapshots restore; the next
// prune completes and a full read-back check passes.
func TestKilledPrune(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	testutil.ResticBin(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	o := testutil.DefaultGenOptions(9)
	o.SmallFiles, o.LargeFiles, o.MaxSmallSize = 40, nil, 16<<10
	testutil.GenTree(t, src, o)
	repoDir := filepath.Join(tmp, "repo")
	mustCairn(t, repoDir, "init")

	// Each backup adds a file only its snapshot has and one that all later
	// snapshots keep, in one new pack: forgetting a snapshot leaves that
	// pack partly used, so pruning it means repacking.
	const runs = 22
	var ids []string
	versions := map[string]string{} // snapshot ID -> copy of its source
	for i := 0; i < runs+3; i++ {
		os.Remove(filepath.Join(src, fmt.Sprintf("unique-%d.bin", i-1)))
		for name, size := range map[string]int{"unique-%d.bin": 1<<20 + i*4096, "kept-%d.bin": 5 << 20} {
			buf := make([]byte, size)
			rand.Read(buf)
			if err := os.WriteFile(filepath.Join(src, fmt.Sprintf(name, i)), buf, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		mustCairn(t, repoDir, "--pack-size", "8", "backup", "-q", src, "--time", fmt.Sprintf("2024-05-01 %02d:%02d:00", i/60, i%60))
		id := newestSnapshot(t, repoDir)
		ids = append(ids, id)
		v := filepath.Join(tmp, "v", id)
		os.MkdirAll(filepath.Dir(v), 0o755)
		if out, err := exec.Command("cp", "-a", src, v).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
		versions[id] = v
	}

	rnd := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 3))
	killed, midway := 0, 0
	pruneTime := 300 * time.Millisecond // of the last whole prune
	for run := 0; run < runs; run++ {
		// Forget one snapshot (not the first or last, for the restore sample).
		victim := ids[1+rnd.IntN(len(ids)-2)]
		mustCairn(t, repoDir, "forget", victim[:12])
		ids = removeString(ids, victim)

		// Kill at a random time, or just after prune announces one of its
		// writing steps (these take a few milliseconds each, too short for
		// random times to hit them often).
		at := killPoints[run%len(killPoints)]
		wasKilled, where := killPrune(t, repoDir, rnd, at, pruneTime)
		if wasKilled {
			killed++
		}
		r := cairn(t, repoDir, "check")
		if r.code != 0 {
			t.Fatalf("run %d (killed %s): cairn check: %v", run, where, r)
		}
		left := "nothing left over"
		if strings.Contains(r.stderr, "unused pack") || strings.Contains(r.stderr, "more than one index") {
			midway++ // killed after writing new packs or index files
			left = "left: " + strings.ReplaceAll(strings.TrimSpace(r.stderr), "\n", "; ")
		}
		t.Logf("run %d: killed %s; %s", run, where, left)
		// A sample of the snapshots restores: the oldest, the newest and a
		// random one.
		for _, id := range []string{ids[0], ids[len(ids)-1], ids[rnd.IntN(len(ids))]} {
			target := filepath.Join(tmp, "restore", fmt.Sprint(run), id[:8])
			mustCairn(t, repoDir, "restore", id[:12], "--target", target)
			testutil.CompareTrees(t, versions[id], filepath.Join(target, src), testutil.CompareOptions{})
			os.RemoveAll(target)
		}
		// The next prune finishes the job.
		start := time.Now()
		res := mustCairn(t, repoDir, "--pack-size", "8", "prune", "--max-unused", "0")
		pruneTime = time.Since(start)
		if !strings.Contains(res.stdout, "unused after:  0 B") {
			t.Errorf("run %d: prune after the kill leaves unused data:\n%s", run, res.stdout)
		}
		mustCairn(t, repoDir, "check", "--read-data")
	}
	t.Logf("%d of %d prunes killed, %d of them after writing new packs or index files", killed, runs, midway)
	if killed < runs/2 || midway < runs/6 {
		t.Fatalf("only %d of %d prunes were killed before finishing, %d after writing something", killed, runs, midway)
	}
	mustCairn(t, repoDir, "unlock") // restic 0.14 does not see that the killed prunes' locks are stale
	if out, err := testutil.RunRestic(t, repoDir, password, "check", "--read-data"); err != nil {
		t.Fatalf("restic check --read-data: %v\n%s", err, out)
	}
}

// killPoints are where TestKilledPrune kills: "" is at a random time,
// anything else just after prune printed a line starting with it.
var killPoints = []string{"", "repacking", "writing the new index", "removing old index files", "removing ", ""}

// killPrune starts a prune and SIGKILLs it at the given point. It reports
// whether the process was killed (not finished) and where.
func killPrune(t *testing.T, repoDir string, rnd *mrand.Rand, at string, pruneTime time.Duration) (bool, string) {
	t.Helper()
	cmd := exec.Command(cairnBin, "--pack-size", "8", "prune", "--max-unused", "0")
	cmd.Env = append(cleanEnv(), "CAIRN_REPOSITORY="+repoDir, "CAIRN_PASSWORD="+password, "CAIRN_KDF_N=1024")
	var errb strings.Builder
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	trigger := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if at != "" && strings.HasPrefix(sc.Text(), at) && (at != "removing " || strings.HasSuffix(sc.Text(), "packs")) {
				select {
				case trigger <- sc.Text():
				default:
				}
			}
		}
	}()
	done := make(chan error, 1)
	go func() { <-readDone; done <- cmd.Wait() }() // Wait only once the pipe is read
	var timer <-chan time.Time
	where := ""
	if at == "" {
		d := time.Duration(rnd.Int64N(int64(pruneTime)))
		timer, where = time.After(d), fmt.Sprintf("after %v", d)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("prune failed by itself: %v\n%s", err, errb.String())
		}
		return false, "never (it finished)"
	case <-timer:
	case line := <-trigger:
		// Deleting a few files takes well under a millisecond.
		span := 4000
		if strings.HasPrefix(line, "removing") {
			span = 600
		}
		d := time.Duration(rnd.IntN(span)) * time.Microsecond
		time.Sleep(d)
		where = fmt.Sprintf("%v after %q", d, line)
	}
	if cmd.Process.Signal(syscall.SIGKILL) != nil { // already gone
		if err := <-done; err != nil {
			t.Fatalf("prune failed by itself: %v\n%s", err, errb.String())
		}
		return false, "never (it finished first)"
	}
	if err := <-done; err == nil {
		return false, "never (it finished first)"
	}
	return true, where
}

func newestSnapshot(t *testing.T, repoDir string) string {
	t.Helper()
	res := mustCairn(t, repoDir, "snapshots", "--json", "--latest", "1")
	i := strings.LastIndex(res.stdout, `"id":"`)
	if i < 0 {
		t.Fatalf("no snapshot: %s", res.stdout)
	}
	return res.stdout[i+6 : i+6+64]
}

func removeString(s []string, x string) []string {
	var out []string
	for _, v := range s {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}
