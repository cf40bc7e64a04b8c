package podvolumes

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBenchAgentRestoreVsRestic measures the agent's restore of one volume
// (from the check of the item to the done marker) against `restic
// restore` of the same tree from the same repository, and logs the ratio.
// A measurement, not a pass/fail speed test: it runs only with
// CAIRN_BENCH=1 (`CAIRN_BENCH=1 go test -run BenchAgentRestore -v
// ./tests/podvolumes/`).
func TestBenchAgentRestoreVsRestic(t *testing.T) {
	if os.Getenv("CAIRN_BENCH") == "" {
		t.Skip("set CAIRN_BENCH=1 to measure")
	}
	bin := filepath.Join(os.Getenv("HOME"), ".cache", "cairn", "bin", "restic-0.19.1")
	if _, err := os.Stat(bin); err != nil {
		t.Skip("restic 0.19.1 not built")
	}
	e := newEnv(t, "rbench")
	uid := e.pod("bench", "node-a", map[string]string{"backup.cairn.io/backup-volumes": "data"}, emptyDirVol("data"))
	src := e.emptyDir(uid, "data")
	testutil.GenTree(t, src, testutil.GenOptions{Seed: 42, SmallFiles: 3000, LargeFiles: []int64{48 << 20, 48 << 20}, Depth: 4, EmptyFiles: 5})
	ag := e.agent("node-a")
	b := e.backup("b1", 0)

	copyNS := e.appNS + "-copy"
	e.restoreInto("b1", "r1", copyNS)
	// The directory is there before the pod is scheduled: no waiting is
	// measured.
	pod, err := e.cl.Dynamic.Resource(gvrPod).Namespace(copyNS).Get(t.Context(), "bench", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dst := e.emptyDir(string(pod.GetUID()), "data")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	e.schedule(copyNS, "bench", "node-a")
	st := e.waitRestored("r1", 1)["bench/data"].Status
	// The log line comes just after the status.
	var m []string
	e.waitFor(10*time.Second, "the restore in the agent's log", func() bool {
		m = regexp.MustCompile(`completed: \d+ files, .* took (\S+) \(flush to disk and marker (\S+)\)`).FindStringSubmatch(ag.text())
		return m != nil
	})
	agentTook, err1 := time.ParseDuration(m[1])
	flush, err2 := time.ParseDuration(m[2])
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	testutil.CompareTrees(t, src, dst, testutil.CompareOptions{IgnoreRootMeta: true, Ignore: isMarker})

	// The better of two runs: the second has restic's cache warm, as the
	// agent's is.
	var resticTook time.Duration
	for i := range 2 {
		target := filepath.Join(e.dir, fmt.Sprintf("restic-restored-%d", i))
		cmd := exec.Command(bin, "-r", e.repo, "--cache-dir", filepath.Join(e.dir, "restic-cache"),
			"restore", b.SnapshotID+":/volumes/"+e.appNS+"/bench/data", "--target", target)
		cmd.Env = append(os.Environ(), "RESTIC_PASSWORD="+password)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("restic restore: %v\n%s", err, out)
		}
		if d := time.Since(start); i == 0 || d < resticTook {
			resticTook = d
		}
		testutil.CompareTrees(t, src, target, testutil.CompareOptions{IgnoreRootMeta: true})
	}

	mb := float64(st.Bytes) / (1 << 20)
	t.Logf("volume: %d files, %.0f MiB", st.Files, mb)
	t.Logf("restore: agent %v (%.0f MiB/s), restic %v (%.0f MiB/s, process start included): agent/restic time ratio %.2f",
		agentTook.Round(time.Millisecond), mb/agentTook.Seconds(), resticTook.Round(time.Millisecond), mb/resticTook.Seconds(),
		agentTook.Seconds()/resticTook.Seconds())
	// restic does not flush; the agent must before the pod may start.
	t.Logf("without the agent's flush to disk (%v): ratio %.2f", flush.Round(time.Millisecond), (agentTook-flush).Seconds()/resticTook.Seconds())
}
