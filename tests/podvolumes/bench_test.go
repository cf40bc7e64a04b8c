package podvolumes

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/testutil"
)

// TestBenchAgentVsRestic measures the agent's backup of one volume (first
// and unchanged second run) against `restic backup` of the same directory,
// and logs the ratios. It is a measurement, not a pass/fail speed test:
// it runs only with CAIRN_BENCH=1 (`CAIRN_BENCH=1 go test -run Bench -v
// ./tests/podvolumes/`).
func TestBenchAgentVsRestic(t *testing.T) {
	if os.Getenv("CAIRN_BENCH") == "" {
		t.Skip("set CAIRN_BENCH=1 to measure")
	}
	e := newEnv(t, "bench")
	uid := e.pod("bench", "node-a", map[string]string{"backup.cairn.io/backup-volumes": "data"}, emptyDirVol("data"))
	dir := e.emptyDir(uid, "data")
	testutil.GenTree(t, dir, testutil.GenOptions{Seed: 42, SmallFiles: 3000, LargeFiles: []int64{48 << 20, 48 << 20}, Depth: 4, EmptyFiles: 5})
	ag := e.agent("node-a")

	tookRe := regexp.MustCompile(`completed: .* took (\S+)`)
	agentRun := func(name string) time.Duration {
		e.backup(name, 0)
		m := tookRe.FindAllStringSubmatch(ag.text(), -1)
		d, err := time.ParseDuration(m[len(m)-1][1])
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a1, a2 := agentRun("b1"), agentRun("b2")
	st := e.items("b1")["bench/data"].Status

	bin := filepath.Join(os.Getenv("HOME"), ".cache", "cairn", "bin", "restic-0.19.1")
	if _, err := os.Stat(bin); err != nil {
		t.Skip("restic 0.19.1 not built")
	}
	rrepo, rcache := filepath.Join(e.dir, "restic-repo"), filepath.Join(e.dir, "restic-cache")
	restic := func(args ...string) []byte {
		cmd := exec.Command(bin, append([]string{"-r", rrepo, "--cache-dir", rcache}, args...)...)
		cmd.Env = append(os.Environ(), "RESTIC_PASSWORD="+password)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("restic %v: %v", args, err)
		}
		return out
	}
	restic("init")
	resticRun := func() time.Duration {
		sc := bufio.NewScanner(strings.NewReader(string(restic("backup", "--json", dir))))
		for sc.Scan() {
			var m struct {
				MessageType   string  `json:"message_type"`
				TotalDuration float64 `json:"total_duration"`
			}
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.MessageType == "summary" {
				return time.Duration(m.TotalDuration * float64(time.Second))
			}
		}
		t.Fatal("no restic summary")
		return 0
	}
	r1, r2 := resticRun(), resticRun()
	mb := float64(st.Bytes) / (1 << 20)
	t.Logf("volume: %d files, %.0f MiB", st.Files, mb)
	t.Logf("first backup:   agent %v (%.0f MiB/s), restic %v (%.0f MiB/s): agent/restic time ratio %.2f",
		a1.Round(time.Millisecond), mb/a1.Seconds(), r1.Round(time.Millisecond), mb/r1.Seconds(), a1.Seconds()/r1.Seconds())
	t.Logf("unchanged rerun: agent %v, restic %v: ratio %.2f",
		a2.Round(time.Millisecond), r2.Round(time.Millisecond), a2.Seconds()/r2.Seconds())
}
