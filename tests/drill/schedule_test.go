package drill

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestScheduleRunsInPod: a schedule's first Job runs `cluster backup
// --schedule-name` in a pod of the cairn image, as the install's
// ServiceAccount with its Secret, and the backup it makes is named for
// the schedule and listed by `cluster backups` and `schedule describe`.
// Then a second run, a backup whose TTL runs out, and the maintenance
// CronJob's Job in a pod: it forgets the first run (--keep-last 1) and the
// expired backup, prunes, records the run, and the kept backup restores.
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
		"--backup-volumes=false", "--keep-last", "1", "--image", cairnImage, "--image-pull-policy", "Never")
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
	first := desc.Backups[0].Name

	// A second scheduled run (its name is a second later at least), and a
	// backup by hand whose time to live runs out at once.
	time.Sleep(time.Second)
	d.kubectl("-n", "cairn-system", "create", "job", "--from=cronjob/pod-sched", "pod-sched-second")
	d.waitJob("pod-sched-second", 3*time.Minute)
	d.cairn("cluster", "backup", "short-lived", "--include-namespaces", "sched-app", "--backup-volumes=false", "--ttl", "1s")
	time.Sleep(1500 * time.Millisecond)

	d.cairn("cluster", "maintenance", "create", "--image", cairnImage, "--image-pull-policy", "Never")
	t.Cleanup(func() { d.cairn("cluster", "maintenance", "delete") })
	d.kubectl("-n", "cairn-system", "create", "job", "--from=cronjob/cairn-maintenance", "maintenance-now")
	d.waitJob("maintenance-now", 3*time.Minute)

	var backups []struct{ Name string }
	if err := json.Unmarshal([]byte(d.cairn("--json", "cluster", "backups")), &backups); err != nil {
		t.Fatal(err)
	}
	if len(backups) != 1 || backups[0].Name == first || !strings.HasPrefix(backups[0].Name, "pod-sched-") {
		t.Fatalf("after maintenance: backups %+v (first was %s)", backups, first)
	}
	var hist []struct {
		Record *struct {
			Forgotten []struct{ Backup, Reason string }
			Prune     *struct{ Freed int64 }
			Error     string
		}
	}
	if err := json.Unmarshal([]byte(d.cairn("--json", "cluster", "maintenance", "history")), &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || hist[0].Record == nil || hist[0].Record.Error != "" || hist[0].Record.Prune == nil || len(hist[0].Record.Forgotten) != 2 {
		t.Fatalf("history: %s", d.cairn("cluster", "maintenance", "history", "latest"))
	}
	reasons := map[string]string{}
	for _, f := range hist[0].Record.Forgotten {
		reasons[f.Backup] = f.Reason
	}
	if reasons[first] != "policy" || reasons["short-lived"] != "expired" {
		t.Errorf("forgotten: %+v", hist[0].Record.Forgotten)
	}
	// The kept backup restores, next to the original.
	d.cairn("cluster", "restore", backups[0].Name, "--namespace-mappings", "sched-app:sched-copy")
	if out := d.kubectl("-n", "sched-copy", "get", "configmap", "cfg", "-o", "jsonpath={.data.a}"); out != "b" {
		t.Errorf("restored configmap holds %q", out)
	}
	d.cairn("check", "--read-data")
}

// waitJob waits for a Job in cairn-system to succeed; its log on failure.
func (d *drill) waitJob(name string, limit time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		st := d.kubectl("-n", "cairn-system", "get", "job", name, "-o", "jsonpath={.status.succeeded}/{.status.failed}")
		switch {
		case strings.HasPrefix(st, "1/"):
			return
		case strings.HasSuffix(st, "/1") || time.Now().After(deadline):
			logs, _ := exec.Command(kubectl, "--kubeconfig", clu.Kubeconfig, "-n", "cairn-system", "logs", "job/"+name).CombinedOutput()
			d.t.Fatalf("job %s: %s\n%s", name, st, logs)
		}
		time.Sleep(time.Second)
	}
}
