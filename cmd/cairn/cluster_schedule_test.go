package main

import (
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/schedule"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Schedules on a real control plane: a bad schedule creates nothing, the
// CronJob passes a server-side dry run and create, its first Job exists
// unless --skip-immediately, pause/unpause flip suspend, the container's
// command run here with the pod's environment makes a backup named
// <schedule>-<timestamp> tagged schedule=<name> that describe lists, and
// delete removes the CronJob and its Jobs but not the backup.
func TestClusterSchedule(t *testing.T) {
	c, kubectl := startBackupTestCluster(t)
	e := newInitEnv(t)
	kc := []string{"cluster", "--kubeconfig", c.Kubeconfig}
	cl := func(args ...string) []string { return append(slices.Clone(kc), args...) }
	kget := func(what ...string) string {
		t.Helper()
		out, err := exec.Command(kubectl, append([]string{"--kubeconfig", c.Kubeconfig, "-n", "cairn-system"}, what...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", what, err, out)
		}
		return string(out)
	}
	kubectlApply(t, kubectl, c.Kubeconfig, "apiVersion: v1\nkind: Namespace\nmetadata: {name: sched-app}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: sched-app}\ndata: {a: b}\n")

	// Before install: no Secret, nothing made.
	e.fails(exitFailure, e.run(cl("schedule", "create", "early", "--schedule", "@daily")...), "no Secret cairn-repository", "cairn cluster install")
	e.ok(cl("install", "-r", e.repo, "--image", "cairn:test", "--image-pull-policy", "Never")...)

	// Refused before anything is created.
	e.fails(exitFailure, e.run(cl("schedule", "create", "bad", "--schedule", "@every 7h")...), "cannot repeat every 7 hours evenly")
	e.fails(exitFailure, e.run(cl("schedule", "create", "bad", "--schedule", "0 25 * * *")...), "hour")
	e.fails(exitFailure, e.run(cl("schedule", "create", "bad", "--schedule", "CRON_TZ=Nowhere/Town 0 3 * * *")...), "unknown time zone")
	e.fails(exitFailure, e.run(cl("schedule", "create", "bad", "--schedule", "0 0 * * 7")...), "day of week")
	if out := kget("get", "cronjobs,jobs", "-o", "name"); out != "" {
		t.Fatalf("a refused schedule left %s", out)
	}

	// What the translation makes (and what the validator lets through),
	// the API server takes.
	for _, expr := range []string{"@every 15m", "@every 1d", "@every 7d", "TZ=America/New_York @weekly", "0,30 9-17/2 ? * 0", "0 0 * jan-mar mon-fri", "5/15 * 1-7 * *", "? * * * *"} {
		if res := e.run(cl("schedule", "create", "dry", "--schedule", expr, "--dry-run")...); res.code != 0 {
			t.Errorf("%q: the API server refused it: %s", expr, res.stderr)
		}
	}

	create := cl("schedule", "create", "nightly", "--schedule", "CRON_TZ=Europe/Paris @every 6h", "--include-namespaces", "sched-app",
		"--backup-volumes=false", "--ttl", "48h", "--image", "cairn:test", "--image-pull-policy", "Never")
	dry := e.ok(append(slices.Clone(create), "--dry-run")...)
	if !strings.Contains(dry.stdout, "concurrencyPolicy: Forbid") || !strings.Contains(dry.stdout, "timeZone: Europe/Paris") {
		t.Errorf("dry run printed:\n%s", dry.stdout)
	}
	if out := kget("get", "cronjobs,jobs", "-o", "name"); out != "" {
		t.Fatalf("--dry-run made %s", out)
	}
	res := e.ok(create...)
	if !strings.Contains(res.stdout, `runs "0 */6 * * *" in time zone Europe/Paris`) || !strings.Contains(res.stdout, "first backup started: job.batch/nightly-") {
		t.Errorf("create said %q", res.stdout)
	}
	e.fails(exitFailure, e.run(create...), "schedule nightly exists")
	res = e.ok(cl("--json", "schedule", "create", "later", "--schedule", "0 3 * * *", "--skip-immediately")...)
	var made scheduleCreated
	if err := json.Unmarshal([]byte(res.stdout), &made); err != nil || made.Name != "later" || made.Schedule != "0 3 * * *" || made.FirstJob != "" {
		t.Errorf("create --json printed %q (%v)", res.stdout, err)
	}

	var cj unstructured.Unstructured
	if err := json.Unmarshal([]byte(kget("get", "cronjob", "nightly", "-o", "json")), &cj.Object); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := unstructured.NestedString(cj.Object, "spec", "schedule"); s != "0 */6 * * *" {
		t.Errorf("spec.schedule %q", s)
	}
	if jobs := kget("get", "jobs", "-l", schedule.LabelSchedule+"=nightly", "-o", "jsonpath={.items[*].metadata.ownerReferences[0].name}"); jobs != "nightly" {
		t.Errorf("nightly's first Job: %q", jobs)
	}
	if jobs := kget("get", "jobs", "-l", schedule.LabelSchedule+"=later", "-o", "name"); jobs != "" {
		t.Errorf("--skip-immediately made %q", jobs)
	}

	for _, step := range []struct{ cmd, want string }{{"pause", "true"}, {"unpause", "false"}} {
		e.ok(cl("schedule", step.cmd, "nightly")...)
		if s := kget("get", "cronjob", "nightly", "-o", "jsonpath={.spec.suspend}"); s != step.want {
			t.Errorf("after %s: suspend %q", step.cmd, s)
		}
	}

	// The pod's command, run here with the pod's environment: the Secret's
	// variables and the container's env (its emptyDir cache path aside).
	pod, _, _ := unstructured.NestedMap(cj.Object, "spec", "jobTemplate", "spec", "template", "spec")
	ctr := pod["containers"].([]any)[0].(map[string]any)
	var args []string
	for _, a := range ctr["args"].([]any) {
		args = append(args, a.(string))
	}
	var secret struct{ Data map[string]string }
	if err := json.Unmarshal([]byte(kget("get", "secret", "cairn-repository", "-o", "json")), &secret); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for k, v := range secret.Data {
		b, _ := base64.StdEncoding.DecodeString(v)
		env[k] = string(b)
	}
	if env["CAIRN_REPOSITORY"] != e.repo {
		t.Fatalf("Secret's repository %q", env["CAIRN_REPOSITORY"])
	}
	if mounts, _ := json.Marshal(ctr["volumeMounts"]); !strings.Contains(string(mounts), `"mountPath":"`+e.repo+`"`) {
		t.Errorf("the local repository is not mounted: %s", mounts)
	}
	before := time.Now().UTC().Truncate(time.Second)
	res = e.runEnv(env, append(args, "--kubeconfig", c.Kubeconfig)...)
	if res.code != 0 {
		t.Fatalf("cairn %q: exit %d\n%s%s", args, res.code, res.stdout, res.stderr)
	}
	name := regexp.MustCompile(`backup (nightly-\d{14}) of cluster`).FindStringSubmatch(res.stdout)
	if name == nil {
		t.Fatalf("scheduled backup said %q", res.stdout)
	}
	if ts, err := time.Parse(schedule.TimestampLayout, strings.TrimPrefix(name[1], "nightly-")); err != nil || ts.Before(before) || ts.After(time.Now()) {
		t.Errorf("backup %s not named for now (%v): %v", name[1], before, err)
	}
	var backups []backupListJSON
	if err := json.Unmarshal([]byte(e.ok("--json", "cluster", "backups").stdout), &backups); err != nil || len(backups) != 1 ||
		backups[0].Name != name[1] || backups[0].Schedule != "nightly" || backups[0].Items == 0 {
		t.Errorf("backups %+v %v", backups, err)
	}

	var d scheduleJSON
	if err := json.Unmarshal([]byte(e.ok(cl("--json", "schedule", "describe", "nightly")...).stdout), &d); err != nil {
		t.Fatal(err)
	}
	if d.Spec == nil || d.Spec.TTL != "48h" || !slices.Equal(d.Spec.BackupArgs, []string{"--backup-volumes=false", "--include-namespaces=sched-app", "--cluster-name=cairn-test"}) ||
		d.NextRun == nil || d.LastRun == nil || len(d.Backups) != 1 || d.Backups[0].Name != name[1] {
		t.Errorf("describe: %+v spec %+v", d, d.Spec)
	}
	if h := d.NextRun.In(mustLoc(t, "Europe/Paris")).Hour(); h%6 != 0 || d.NextRun.Minute() != 0 || time.Until(*d.NextRun) > 6*time.Hour {
		t.Errorf("next run %v", d.NextRun)
	}
	text := e.ok(cl("schedule", "describe", "nightly")...).stdout
	if !strings.Contains(text, "as given: CRON_TZ=Europe/Paris @every 6h") || !strings.Contains(text, name[1]) || !strings.Contains(text, "Europe/Paris)") {
		t.Errorf("describe printed:\n%s", text)
	}

	e.ok(cl("schedule", "delete", "nightly")...)
	var list []scheduleJSON
	if err := json.Unmarshal([]byte(e.ok(cl("--json", "schedule", "list")...).stdout), &list); err != nil || len(list) != 1 || list[0].Name != "later" {
		t.Errorf("list after delete: %+v %v", list, err)
	}
	deadline := time.Now().Add(time.Minute)
	for kget("get", "jobs", "-l", schedule.LabelSchedule+"=nightly", "-o", "name") != "" {
		if time.Now().After(deadline) {
			t.Fatal("nightly's Jobs outlived it")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if out := e.ok("cluster", "backups").stdout; !strings.Contains(out, name[1]) {
		t.Errorf("delete took the backup:\n%s", out)
	}
	e.fails(exitFailure, e.run(cl("schedule", "describe", "nightly")...), "no schedule nightly")
}

func mustLoc(t *testing.T, name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// --schedule-name names the backup: a NAME beside it, or a schedule name
// too long for the backup names made from it, is refused.
func TestClusterBackupScheduleNameArgs(t *testing.T) {
	e := newInitEnv(t)
	if res := e.run("cluster", "--kubeconfig", "/nonexistent", "backup", "x", "--schedule-name", "nightly"); res.code == 0 || !strings.Contains(res.stderr, "no backup name with --schedule-name") {
		t.Errorf("exit %d: %s", res.code, res.stderr)
	}
	e.fails(exitFailure, e.run("cluster", "--kubeconfig", "/nonexistent", "backup", "--schedule-name", strings.Repeat("n", 49)), "--schedule-name", "at most 48")
}
