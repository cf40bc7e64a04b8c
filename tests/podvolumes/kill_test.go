package podvolumes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/tests/testutil"
)

// writeRandom writes size random bytes (incompressible) to p.
func writeRandom(t *testing.T, p string, size int, seed uint64) {
	t.Helper()
	buf := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(buf)
	if err := os.WriteFile(p, buf, 0o640); err != nil {
		t.Fatal(err)
	}
}

// The agent stops while it reads a big file: killed (SIGKILL, its
// heartbeat goes stale) or told to stop (SIGTERM, it releases the item).
// The node's next agent copies the volume again (attempt 2), never
// reporting the half-done attempt; the backup completes and both cairn and
// restic find the repository clean. With --max-attempts 1 the item fails
// instead and the backup is PartiallyFailed.
func TestAgentStoppedMidVolume(t *testing.T) {
	for _, tc := range []struct {
		name        string
		sig         syscall.Signal
		maxAttempts string
	}{
		{"SIGKILL, retried", syscall.SIGKILL, "3"},
		{"SIGTERM, released and retried", syscall.SIGTERM, "3"},
		{"SIGKILL, attempts used up", syscall.SIGKILL, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "big")
			uid := e.pod("big", "node-a", map[string]string{"backup.cairn.io/backup-volumes": "blob"}, emptyDirVol("blob"))
			other := e.pod("other", "node-b", map[string]string{"backup.cairn.io/backup-volumes": "v"}, emptyDirVol("v"))
			blob := e.emptyDir(uid, "blob")
			testutil.GenTree(t, blob, genOpts(5))
			writeRandom(t, filepath.Join(blob, "big.bin"), 24<<20, 9)
			testutil.GenTree(t, e.emptyDir(other, "v"), genOpts(6))

			// Uploads at 1 MiB/s keep the first agent busy with big.bin
			// for about 24 s.
			slow := e.agent("node-a", "--limit-upload", "1024", "--pack-size", "4")
			e.agent("node-b")

			var out, errb bytes.Buffer
			cmd := exec.Command(cairnBin, "cluster", "backup", "b", "--json", "--kubeconfig", e.c.Kubeconfig,
				"--include-namespaces", e.appNS, "--agent-namespace", e.agentNS, "--volume-timeout", "3m")
			cmd.Env, cmd.Stdout, cmd.Stderr = e.baseEnv(), &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var first *volapi.VolumeBackup
			e.waitFor(time.Minute, "the agent reading big.bin", func() bool {
				first = e.items("b")["big/blob"]
				return first != nil && first.Status.Phase == volapi.PhaseInProgress && first.Status.Progress != nil && first.Status.Progress.BytesDone > 0
			})
			time.Sleep(time.Second)
			slow.stop(tc.sig)
			left := e.items("b")["big/blob"].Status
			if left.Phase != volapi.PhaseInProgress || left.Tree != "" {
				t.Fatalf("after %v the item is %+v", tc.sig, left)
			}
			if tc.sig == syscall.SIGTERM && (left.Agent != "" || left.Heartbeat != nil || !strings.Contains(left.Message, "stopped")) {
				t.Errorf("SIGTERM did not release the item: %+v", left)
			}
			if !strings.Contains(slow.text(), "copying volume") {
				t.Errorf("first agent log:\n%s", slow.text())
			}
			e.agent("node-a", "--max-attempts", tc.maxAttempts)

			err := cmd.Wait()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			var res backupJSON
			if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
				t.Fatalf("backup: exit %d %v\n%s\n%s", code, jerr, out.String(), errb.String())
			}
			st := e.items("b")["big/blob"].Status
			if tc.maxAttempts == "1" {
				if code != 3 || res.Phase != "PartiallyFailed" || st.Phase != volapi.PhaseFailed || st.Tree != "" || !strings.Contains(st.Message, "stopped 1 times") {
					t.Fatalf("exit %d phase %s; item %+v\n%s", code, res.Phase, st, errb.String())
				}
				desc := e.cairn(0, "cluster", "describe", "b")
				if !strings.Contains(desc, "big blob: Failed") || !strings.Contains(desc, "other v: Completed") {
					t.Errorf("describe:\n%s", desc)
				}
			} else {
				if code != 0 || res.Phase != "Completed" || st.Phase != volapi.PhaseCompleted || st.Attempts != 2 {
					t.Fatalf("exit %d phase %s; item %+v\n%s", code, res.Phase, st, errb.String())
				}
				restored := filepath.Join(e.dir, "restored")
				e.restic("restore", res.SnapshotID+":/volumes/"+e.appNS+"/big/blob", "--target", restored)
				testutil.CompareTrees(t, blob, restored, testutil.CompareOptions{IgnoreRootMeta: true})
			}
			e.cairn(0, "check", "--read-data")
			// The killed agent's lock is stale, not gone: restic checks
			// without locking.
			e.restic("check", "--no-lock", "--read-data")
		})
	}
}

// Six volumes of one pod with the same files, copied three at a time by
// one agent: the copies dedup against each other while they run, every
// volume restores byte for byte and the repository checks clean.
func TestConcurrentVolumesSameData(t *testing.T) {
	e := newEnv(t, "same")
	var vols []map[string]any
	var names []string
	for i := range 6 {
		names = append(names, fmt.Sprintf("v%d", i))
		vols = append(vols, emptyDirVol(names[i]))
	}
	uid := e.pod("p", "node-a", map[string]string{"backup.cairn.io/backup-volumes": strings.Join(names, ",")}, vols...)
	for _, n := range names {
		testutil.GenTree(t, e.emptyDir(uid, n), genOpts(7))
	}
	ag := e.agent("node-a", "--concurrent-volumes", "3")
	res := e.backup("b", 0)
	if res.Phase != "Completed" || len(res.Volumes) != 6 {
		t.Fatalf("%+v", res)
	}
	var added int64
	for _, vb := range e.items("b") {
		added += vb.Status.BytesAdded
	}
	if one := e.items("b")["p/v0"].Status.Bytes; added > 2*one {
		t.Errorf("%d bytes added for six copies of %d bytes: no dedup", added, one)
	}
	// Copies ran at once, never more than three. (How many overlap depends
	// on how fast the items arrive: a copy may end before the third item
	// is made, so "three started before the first ended" is not a rule.)
	log := ag.text()
	running, most := 0, 0
	for _, line := range strings.Split(log, "\n") {
		switch {
		case strings.Contains(line, ": copying volume"):
			running++
			most = max(most, running)
		case strings.Contains(line, ": completed:"):
			running--
		}
	}
	if most < 2 || most > 3 {
		t.Errorf("%d copies at once at most, want 2 or 3 (--concurrent-volumes 3):\n%s", most, log)
	}
	out := filepath.Join(e.dir, "restored")
	e.restic("restore", res.SnapshotID+":/volumes/"+e.appNS+"/p", "--target", out)
	for _, n := range names {
		testutil.CompareTrees(t, e.emptyDir(uid, n), filepath.Join(out, n), testutil.CompareOptions{IgnoreRootMeta: true})
	}
	e.cairn(0, "check", "--read-data")
	e.restic("check", "--read-data")
}
