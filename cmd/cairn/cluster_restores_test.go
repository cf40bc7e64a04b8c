package main

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/restore"
	"github.com/cairn-backup/cairn/k8s/restorelog"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func restoresJSON(t *testing.T, e *testEnv, args ...string) []restoreListJSON {
	t.Helper()
	res := e.ok(append([]string{"cluster", "restores", "--json"}, args...)...)
	var rows []restoreListJSON
	if err := json.Unmarshal([]byte(res.stdout), &rows); err != nil {
		t.Fatalf("cluster restores --json: %v\n%s", err, res.stdout)
	}
	return rows
}

// A real restore into a control plane is recorded in the repository:
// `cluster restores` and `describe-restore` show it later with the counts
// the restore printed, restic reads the records, and no backup listing,
// forget by backup or backup deletion mistakes them for backups.
func TestClusterRestoresRecorded(t *testing.T) {
	c := crStartCluster(t)
	e := newInitEnv(t)
	ctx := context.Background()
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: c.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "rec-app"}}}
	p, buf := crManifest(t, schema.GroupResource{Resource: "namespaces"}, ns)
	files[p] = buf
	for _, name := range []string{"a", "b"} {
		cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": name, "namespace": "rec-app", "labels": map[string]any{"cm": name}},
			"data":     map[string]any{"k": name}}}
		p, buf := crManifest(t, schema.GroupResource{Resource: "configmaps"}, cm)
		files[p] = buf
	}
	files[layout.ManifestPath("rec-app", "configmaps", "", "broken")] = []byte("data: [")
	crWriteBackup(t, e, "rec-app", files)
	kc := "--kubeconfig=" + c.Kubeconfig

	// A restore with one broken manifest: exit 3, recorded all the same.
	res := e.run("cluster", "restore", "rec-app", kc, "--json", "--namespace-mappings", "rec-app:rec-copy", "--restore-name", "r1")
	e.fails(exitPartial, res, "partially failed")
	out := crRestoreJSON(t, res)
	if out.Phase != layout.PhasePartiallyFailed || len(out.Items) != 4 || out.Total(restore.ActionCreated) != 3 {
		t.Fatalf("restore result: %+v", out)
	}

	rows := restoresJSON(t, e)
	if len(rows) != 1 {
		t.Fatalf("cluster restores: %+v", rows)
	}
	row := rows[0]
	want := restorelog.Counts{Created: 3, Failed: 1, Skipped: out.Skipped}
	if row.Name != "r1" || row.Backup != "rec-app" || row.Cluster != "cairn-test" || row.Phase != layout.PhasePartiallyFailed ||
		row.Counts != want || row.Errors != len(out.Errors) || !row.Start.Equal(out.Start) || row.Problem != "" {
		t.Errorf("cluster restores row %+v, want counts %+v of %+v", row, want, out)
	}

	var d restoreDescribeJSON
	res = e.ok("cluster", "describe-restore", "r1", "--json")
	if err := json.Unmarshal([]byte(res.stdout), &d); err != nil {
		t.Fatalf("describe-restore --json: %v\n%s", err, res.stdout)
	}
	if d.Record == nil || d.Name != "r1" || !slices.Equal(d.Items, out.Items) || d.Counts != want || d.SameName != 1 ||
		d.Spec.NamespaceMappings["rec-app"] != "rec-copy" || d.RecordSnapshotID != row.SnapshotID || d.SourceCluster != "cairn-test" {
		t.Errorf("describe-restore --json: %+v", d)
	}
	// The record's JSON is a superset of `cluster restore --json`.
	var asResult restore.RestoreResult
	if err := json.Unmarshal([]byte(res.stdout), &asResult); err != nil || asResult.Name != "r1" || asResult.Total(restore.ActionCreated) != 3 {
		t.Errorf("describe-restore --json read as a restore result: %+v %v", asResult, err)
	}

	res = e.ok("cluster", "describe-restore", "r1")
	for _, w := range []string{"Name:         r1\n", "Backup:       rec-app (snapshot ", "Phase:        PartiallyFailed\n",
		"Namespace mappings: rec-app:rec-copy\n", "3 created, 0 updated, 0 existed, 1 failed", "configmaps", "Failed:\n  configmaps rec-copy/broken: parse"} {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("describe-restore lacks %q:\n%s", w, res.stdout)
		}
	}
	res = e.ok("cluster", "describe-restore", "r1", "--details")
	if !strings.Contains(res.stdout, "created        configmaps rec-copy/a (from namespace rec-app)") {
		t.Errorf("describe-restore --details:\n%s", res.stdout)
	}
	res = e.ok("cluster", "describe-restore", "r1", "--log")
	for _, w := range []string{"restore r1 of backup rec-app (snapshot ", "into cluster cairn-test started", "created configmaps rec-copy/b (from namespace rec-app)\n",
		"failed configmaps rec-copy/broken (from namespace rec-app): parse", "restore r1: PartiallyFailed in "} {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("describe-restore --log lacks %q:\n%s", w, res.stdout)
		}
	}
	e.fails(exitFailure, e.run("cluster", "describe-restore", "nope"), `no restore is named "nope"`, "`cairn cluster restores` lists them")
	e.fails(exitFailure, e.run("cluster", "describe-restore", "r1", "--log", "--json"), "leave out --json")

	// The name is taken: refused before anything is restored.
	res = e.run("cluster", "restore", "rec-app", kc, "--namespace-mappings", "rec-app:rec-other", "--restore-name", "r1")
	e.fails(exitFailure, res, `a restore named "r1" was already run`, "describe-restore r1")
	if _, err := cl.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Get(ctx, "rec-other", metav1.GetOptions{}); err == nil {
		t.Error("a refused restore created its namespace")
	}
	// Dry runs change nothing and are not recorded; neither are restores
	// with --no-lock (the repository is opened read-only).
	e.fails(exitPartial, e.run("cluster", "restore", "rec-app", kc, "--namespace-mappings", "rec-app:rec-dry", "--dry-run"), "partially failed")
	res = e.ok("--no-lock", "cluster", "restore", "rec-app", kc, "--namespace-mappings", "rec-app:rec-copy", "--include-resources", "namespaces")
	if !strings.Contains(res.stderr, "no record of restore") {
		t.Errorf("--no-lock restore: %s", res.stderr)
	}
	if rows := restoresJSON(t, e); len(rows) != 1 {
		t.Fatalf("dry run or --no-lock restore recorded: %+v", rows)
	}

	// A record that cannot be saved is a warning; the exit code is the restore's.
	saveRestoreRecord = func(context.Context, *repo.Repository, *restorelog.Record, *restorelog.Tracker) (*snapshot.Snapshot, error) {
		return nil, errors.New("disk on fire")
	}
	res = e.ok("cluster", "restore", "rec-app", kc, "--namespace-mappings", "rec-app:rec-copy", "--include-resources", "namespaces")
	saveRestoreRecord = restorelog.Save
	if !strings.Contains(res.stderr, "was not saved in the repository: disk on fire") {
		t.Errorf("failed save: %s", res.stderr)
	}

	// A default name; --backup filters; newest last.
	crWriteBackup(t, e, "rec-two", map[string][]byte{p: buf})
	res = e.ok("cluster", "restore", "rec-two", kc)
	if !strings.Contains(res.stdout, "record saved as snapshot ") {
		t.Errorf("restore output:\n%s", res.stdout)
	}
	rows = restoresJSON(t, e)
	if len(rows) != 2 || rows[0].Name != "r1" || !strings.HasPrefix(rows[1].Name, "rec-two-") || rows[1].Phase != layout.PhaseCompleted || rows[1].Counts.Created != 1 {
		t.Fatalf("cluster restores: %+v", rows)
	}
	if only := restoresJSON(t, e, "--backup", "rec-two"); len(only) != 1 || only[0].Name != rows[1].Name {
		t.Errorf("--backup rec-two: %+v", only)
	}
	res = e.ok("cluster", "restores")
	if !strings.Contains(res.stdout, "NAME") || !regexp.MustCompile(`(?m)^r1 +rec-app +cairn-test .* PartiallyFailed +3 +0 +0 +0 +1 `).MatchString(res.stdout) || !strings.Contains(res.stdout, "2 restores\n") {
		t.Errorf("cluster restores table:\n%s", res.stdout)
	}
	if d := e.ok("cluster", "describe-restore", "latest"); !strings.Contains(d.stdout, "Name:         "+rows[1].Name) {
		t.Errorf("describe-restore latest:\n%s", d.stdout)
	}

	// Backups are listed without the records; restic reads them.
	var backups []backupListJSON
	if err := json.Unmarshal([]byte(e.ok("cluster", "backups", "--json").stdout), &backups); err != nil || len(backups) != 2 {
		t.Fatalf("cluster backups with records present: %+v %v", backups, err)
	}
	for _, b := range backups {
		if !strings.HasPrefix(b.Name, "rec-") || strings.HasPrefix(b.Name, "r1") {
			t.Errorf("cluster backups lists %+v", b)
		}
	}
	if out, err := testutil.RunRestic(t, e.repo, e.env["CAIRN_PASSWORD"], "check", "--read-data"); err != nil {
		t.Fatalf("restic check: %v\n%s", err, out)
	}
	rout, err := testutil.RunRestic(t, e.repo, e.env["CAIRN_PASSWORD"], "snapshots", "--json", "--tag", "cairn-restore")
	if err != nil {
		t.Fatal(err)
	}
	var rsn []struct {
		Hostname string   `json:"hostname"`
		Paths    []string `json:"paths"`
		Tags     []string `json:"tags"`
	}
	if err := json.Unmarshal(rout, &rsn); err != nil || len(rsn) != 2 || rsn[0].Hostname != "cairn-test" || rsn[0].Paths[0] != "k8s-restore://cairn-test" ||
		!slices.Contains(rsn[0].Tags, "restore=r1") || !slices.Contains(rsn[0].Tags, "restore-of=rec-app") {
		t.Errorf("restic snapshots --tag cairn-restore: %s %v", rout, err)
	}

	// Forgetting backups by their tag, or deleting a backup, keeps the
	// records: they tell what was restored into the cluster.
	e.ok("forget", "--tag", "backup=rec-two", "--keep-last", "1")
	crWriteBackup(t, e, "rec-two", map[string][]byte{p: buf})
	e.ok("forget", "--tag", "backup=rec-two", "--keep-last", "1")
	e.ok("cluster", "delete", "rec-app")
	if rows := restoresJSON(t, e); len(rows) != 2 {
		t.Errorf("records after forget and delete of their backups: %+v", rows)
	}
	if d := e.ok("cluster", "describe-restore", "r1"); !strings.Contains(d.stdout, "Backup:       rec-app") {
		t.Errorf("describe-restore after its backup was deleted:\n%s", d.stdout)
	}
}

// Records are read from the repository: what they say reaches a terminal
// with control characters quoted; piped output and --json stay exact.
func TestRestoresEscapeOnTerminal(t *testing.T) {
	e := newInitEnv(t)
	ctx := context.Background()
	r := e.openRepo()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	evil := "evil\x1b[2J\x1b]0;owned\x07"
	res := &restore.RestoreResult{Name: "r-" + evil, Backup: "b-" + evil, Cluster: "c-" + evil, Start: time.Now(), End: time.Now(), Phase: evil,
		Counts:   map[string]map[string]int{"configmaps" + evil: {restore.ActionFailed: 1}},
		Items:    []restore.ItemResult{{Resource: "configmaps" + evil, Namespace: "ns", Name: "n" + evil, Action: restore.ActionFailed, Reason: evil}},
		Warnings: []string{"w" + evil}, Errors: []string{"e" + evil}}
	sn, err := restorelog.Save(ctx, r, &restorelog.Record{RestoreResult: res, Spec: restorelog.Spec{IncludeNamespaces: []string{evil}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"cluster", "restores"}, {"cluster", "describe-restore", sn.ID.Str(), "--details"},
		{"cluster", "describe-restore", sn.ID.Str()}, {"cluster", "describe-restore", sn.ID.Str(), "--log"}} {
		code, out := e.runOnTerminal(t, args...)
		if code != 0 || strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, `\x1b[2J`) {
			t.Errorf("%v on a terminal: exit %d, %q", args, code, out)
		}
	}
	if out := e.ok("cluster", "describe-restore", sn.ID.Str(), "--log").stdout; !strings.Contains(out, "warning: w"+evil+"\n") {
		t.Errorf("piped log changed: %q", out)
	}
	if rows := restoresJSON(t, e); len(rows) != 1 || rows[0].Name != "r-"+evil {
		t.Errorf("--json: %+v", rows)
	}
}

// A default name an earlier restore of the same backup took in the same
// second is made again later; a name the user gave is refused.
func TestRestoresDefaultNameTaken(t *testing.T) {
	e := newInitEnv(t)
	ctx := context.Background()
	r := e.openRepo()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	taken := map[string]bool{}
	for i := range 2 {
		name := restore.DefaultRestoreName("b", now.Add(time.Duration(i)*time.Second))
		taken[name] = true
		res := &restore.RestoreResult{Name: name, Backup: "b", Cluster: "c", Start: now, End: now, Phase: layout.PhaseCompleted}
		if _, err := restorelog.Save(ctx, r, &restorelog.Record{RestoreResult: res}, nil); err != nil {
			t.Fatal(err)
		}
	}
	rr := &restoreRecorder{g: &globalOptions{}, on: true}
	opts := restore.RestoreOptions{Name: restore.DefaultRestoreName("b", now)}
	if err := rr.checkName(ctx, r, &opts, "b", true); err != nil || taken[opts.Name] || !strings.HasPrefix(opts.Name, "b-") {
		t.Errorf("default name: %q, %v", opts.Name, err)
	}
	opts.Name = restore.DefaultRestoreName("b", now)
	if err := rr.checkName(ctx, r, &opts, "b", false); err == nil || !strings.Contains(err.Error(), "give another --restore-name") {
		t.Errorf("a taken name the user gave: %v", err)
	}
}
