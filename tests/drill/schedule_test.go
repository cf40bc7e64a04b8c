package drill

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestScheduleRunsInPod: a schedule's first Job runs `cluster backup
// --schedule-name` in a pod of the cairn image, as the install's
// ServiceAccount with its Secret, and the backup it makes is named for
// the schedule and listed by `cluster backups` and `schedule describe`.
func TestScheduleRunsInPod(t *testing.T) {
	d := &drill{t: t, dir: t.TempDir()}
	d.repo = filepath.Join(d.dir, "repo")
	d.pw = filepath.Join(d.dir, "password")
	if err := os.WriteFile(d.pw, []byte("drill-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cairn("init")
	d.cairn("cluster", "install", "--image", cairnImage, "--image-pull-policy", "Never", "--kubelet-root", nd.RootDir)
	d.kubectl("create", "namespace", "sched-app")
	d.kubectl("-n", "sched-app", "create", "configmap", "cfg", "--from-literal=a=b")
	start := time.Now()
	d.cairn("cluster", "schedule", "create", "pod-sched", "--schedule", "@every 1d", "--include-namespaces", "sched-app",
		"--backup-volumes=false", "--image", cairnImage, "--image-pull-policy", "Never")
	t.Cleanup(func() { d.cairn("cluster", "schedule", "delete", "pod-sched") })

	var desc struct {
		LastRun *struct{ Job, Result string } `json:"last_run"`
		Backups []struct {
			Name, Schedule, Phase string
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if err := json.Unmarshal([]byte(d.cairn("--json", "cluster", "schedule", "describe", "pod-sched")), &desc); err != nil {
			t.Fatal(err)
		}
		if desc.LastRun != nil && desc.LastRun.Result != "Running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first backup did not finish in 3m: %s", d.kubectl("-n", "cairn-system", "get", "jobs,pods", "-o", "wide"))
		}
		time.Sleep(time.Second)
	}
	t.Logf("scheduled backup in a pod done in %s", time.Since(start).Round(time.Millisecond))
	if desc.LastRun.Result != "Succeeded" {
		t.Fatalf("job %s: %s\n%s", desc.LastRun.Job, desc.LastRun.Result, d.kubectl("-n", "cairn-system", "logs", "job/"+desc.LastRun.Job))
	}
	if len(desc.Backups) != 1 || !strings.HasPrefix(desc.Backups[0].Name, "pod-sched-") || len(desc.Backups[0].Name) != len("pod-sched-")+14 ||
		desc.Backups[0].Schedule != "pod-sched" || desc.Backups[0].Phase != "Completed" {
		t.Errorf("describe lists backups %+v", desc.Backups)
	}
	if out := d.cairn("cluster", "backups"); !strings.Contains(out, "pod-sched-") {
		t.Errorf("cluster backups:\n%s", out)
	}
}
