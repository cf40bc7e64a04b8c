package main

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog/catalogtest"
	"github.com/cairn-backup/cairn/k8s/maintenance"
	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/tests/testutil"
)

// Maintenance on a real control plane: the schedule's stored policy and
// the TTLs decide what goes (with the volume snapshots of what goes), a
// dry run changes nothing, the run prunes and frees space, restic still
// checks every byte, the kept backups' data still comes back, history
// shows the runs, and the CronJob that runs it is valid.
func TestClusterMaintenance(t *testing.T) {
	c, kubectl := startBackupTestCluster(t)
	e := newInitEnv(t)
	cl := func(args ...string) []string {
		return append([]string{"cluster", "--kubeconfig", c.Kubeconfig}, args...)
	}
	kget := func(what ...string) string {
		t.Helper()
		out, err := exec.Command(kubectl, append([]string{"--kubeconfig", c.Kubeconfig, "-n", "cairn-system"}, what...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", what, err, out)
		}
		return string(out)
	}
	e.ok(cl("install", "-r", e.repo, "--image", "cairn:test", "--image-pull-policy", "Never")...)
	e.fails(exitFailure, e.run(cl("schedule", "create", "bad", "--schedule", "@daily", "--keep-last", "many")...), "keep-last")
	e.ok(cl("schedule", "create", "nightly", "--schedule", "@daily", "--skip-immediately", "--keep-last", "2")...)
	if out := e.ok(cl("schedule", "describe", "nightly")...).stdout; !strings.Contains(out, "Retention:     keep 2 latest snapshots") {
		t.Errorf("describe:\n%s", out)
	}

	// Four nightly backups and an expired one made by hand, each with a
	// volume of its own random data; the expired one's volume snapshot.
	r := e.openRepo()
	now := time.Now()
	volume := func(name string) []catalogtest.Volume {
		d := filepath.Join(e.dir, "vol-"+name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "data.bin"), randomBytes(t, 2<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		return []catalogtest.Volume{{Namespace: "app", Pod: "db-0", Volume: "data", PVC: "data-db-0", Dir: d}}
	}
	for i, n := range []string{"nightly-1", "nightly-2", "nightly-3", "nightly-4"} {
		catalogtest.WriteBackupTagged(t, r, n, now.Add(time.Duration(i-5)*time.Hour), volume(n), "schedule=nightly")
	}
	catalogtest.WriteBackupTagged(t, r, "old", now.Add(-72*time.Hour), volume("old"), retention.ExpiryTag(now.Add(-time.Hour)))
	e.ok("backup", filepath.Join(e.dir, "vol-old"), "--tag", "volume-of=old,pvc=app/data-db-0")

	before := repoTree(t, e.repo)
	dry := e.ok(cl("maintenance", "run", "--dry-run")...).stdout
	for _, want := range []string{"schedule nightly: keep 2 latest snapshots: 4 backups, 2 kept, 2 forgotten", "forget backup nightly-1 ", "forget backup nightly-2 ",
		"forget backup old (snapshot", "expired", "forget volume snapshot", "of backup old, backup forgotten", "would forget 4 snapshots"} {
		if !strings.Contains(dry, want) {
			t.Errorf("dry run: no %q in\n%s", want, dry)
		}
	}
	if !slices.Equal(before, repoTree(t, e.repo)) {
		t.Fatal("the dry run changed the repository")
	}

	res := e.ok(cl("--json", "maintenance", "run")...)
	var rec maintenance.Record
	if err := json.Unmarshal([]byte(res.stdout), &rec); err != nil {
		t.Fatalf("run --json: %v\n%s", err, res.stdout)
	}
	if len(rec.Forgotten) != 4 || rec.Prune == nil || rec.Prune.Freed < 6<<20 || rec.Error != "" || rec.Cluster == "" {
		t.Errorf("record: %d forgotten, prune %+v, error %q, cluster %q", len(rec.Forgotten), rec.Prune, rec.Error, rec.Cluster)
	}
	left := listBackups(t, e)
	slices.Sort(left)
	if !slices.Equal(left, []string{"nightly-3", "nightly-4"}) {
		t.Errorf("backups left: %v", left)
	}
	// restic reads every byte of what is left, the kept data comes back.
	if out, err := testutil.RunRestic(t, e.repo, testPassword, "check", "--read-data"); err != nil {
		t.Fatalf("restic check --read-data: %v\n%s", err, out)
	}
	got := filepath.Join(e.dir, "exported")
	e.ok(cl("export-volume", "nightly-4", "--pvc", "app/data-db-0", "--target", got)...)
	want, _ := os.ReadFile(filepath.Join(e.dir, "vol-nightly-4", "data.bin"))
	if have, err := os.ReadFile(filepath.Join(got, "data.bin")); err != nil || !slices.Equal(have, want) {
		t.Errorf("nightly-4's volume after maintenance: %v", err)
	}

	// Nothing left to forget: a second run records a run that forgot nothing.
	e.ok(cl("maintenance", "run")...)
	var hist []maintenanceHistoryJSON
	if err := json.Unmarshal([]byte(e.ok(cl("--json", "maintenance", "history")...).stdout), &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Record == nil || len(hist[0].Record.Forgotten) != 0 || hist[1].Record == nil || len(hist[1].Record.Forgotten) != 4 {
		t.Fatalf("history: %+v", hist)
	}
	table := e.ok(cl("maintenance", "history")...).stdout
	if !strings.Contains(table, hist[1].Name) || !strings.Contains(table, "FREED") {
		t.Errorf("history table:\n%s", table)
	}
	log := e.ok(cl("maintenance", "history", hist[1].Name)...).stdout
	if !strings.Contains(log, "forgot backup nightly-1") || !strings.Contains(log, "freed") {
		t.Errorf("history %s:\n%s", hist[1].Name, log)
	}
	e.fails(exitFailure, e.run(cl("maintenance", "history", "no-such-run")...), "no maintenance run")
	// The records are not backups, and no forget policy sees them as such.
	if slices.ContainsFunc(listBackups(t, e), func(n string) bool { return strings.HasPrefix(n, "maintenance") }) {
		t.Error("a maintenance record is listed as a backup")
	}

	// The CronJob: validated by the API server, made, refused twice, deleted.
	dryCJ := e.ok(cl("maintenance", "create", "--schedule", "CRON_TZ=Europe/Paris 30 4 * * *", "--max-unused", "10%", "--image", "cairn:test", "--dry-run")...).stdout
	for _, want := range []string{"- maintenance\n", "- run\n", "--max-unused=10%", "--retry-lock=1h", "timeZone: Europe/Paris", "concurrencyPolicy: Forbid", "cairn.io/maintenance"} {
		if !strings.Contains(dryCJ, want) {
			t.Errorf("create --dry-run: no %q in\n%s", want, dryCJ)
		}
	}
	e.ok(cl("maintenance", "create", "--image", "cairn:test")...)
	if out := kget("get", "cronjob", "cairn-maintenance", "-o", "jsonpath={.spec.schedule}"); out != "0 3 * * *" {
		t.Errorf("schedule %q", out)
	}
	if out := e.ok(cl("schedule", "list")...).stdout; strings.Contains(out, "cairn-maintenance") {
		t.Errorf("maintenance listed as a schedule:\n%s", out)
	}
	e.fails(exitFailure, e.run(cl("maintenance", "create")...), "already scheduled")
	e.ok(cl("maintenance", "delete")...)
	e.fails(exitFailure, e.run(cl("maintenance", "delete")...), "no maintenance is scheduled")
}

// listBackups names the backups `cluster backups --json` lists.
func listBackups(t *testing.T, e *testEnv) []string {
	t.Helper()
	var rows []backupListJSON
	if err := json.Unmarshal([]byte(e.ok("cluster", "backups", "--json").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range rows {
		out = append(out, b.Name)
	}
	return out
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
