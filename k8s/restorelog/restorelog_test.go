package restorelog

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/catalog/catalogtest"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/modifiers"
	"github.com/cairn-backup/cairn/k8s/restore"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/testutil"
)

func testRepo(t testing.TB) (*repo.Repository, string) {
	t.Helper()
	dir := t.TempDir()
	be, err := repo.CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, "restorelog-test", 2, repo.Options{KDF: crypto.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, dir
}

func testRecord(name, backup string, start time.Time) *Record {
	res := &restore.RestoreResult{
		Name: name, Backup: backup, SnapshotID: strings.Repeat("ab", 32), Cluster: "target", Phase: layout.PhasePartiallyFailed,
		Start: start, End: start.Add(1500 * time.Millisecond), Skipped: 4,
		Counts: map[string]map[string]int{"configmaps": {restore.ActionCreated: 1, restore.ActionFailed: 1}, "namespaces": {restore.ActionSkippedExists: 1}},
		Items: []restore.ItemResult{
			{Resource: "namespaces", Name: "app", Action: restore.ActionSkippedExists},
			{Resource: "configmaps", Namespace: "copy", SourceNamespace: "app", Name: "a", Action: restore.ActionCreated},
			{Resource: "configmaps", Namespace: "copy", Name: "b", Action: restore.ActionFailed, Reason: "forbidden"},
		},
		Warnings: []string{"a warning"}, Errors: []string{"configmaps copy/b: forbidden"},
	}
	rules, err := modifiers.Parse([]byte(`{"version": "v1", "resourceModifierRules": [{"conditions": {"groupResource": "deployments.apps"}, "mergePatches": [{"patchData": "{\"metadata\": {\"labels\": {\"a\": \"b\"}}}"}]}]}`))
	if err != nil {
		panic(err)
	}
	return &Record{RestoreResult: res, CairnVersion: "test", SourceCluster: "source",
		Spec: SpecOf(restore.RestoreOptions{NamespaceMappings: map[string]string{"app": "copy"}, IncludeNamespaces: []string{"app"}, Modifiers: rules})}
}

// Records are saved as snapshots that no backup listing picks up, and are
// found by name, ID, backup and "latest".
func TestSaveListFind(t *testing.T) {
	ctx := context.Background()
	r, dir := testRepo(t)
	now := time.Now().UTC().Truncate(time.Second)
	catalogtest.WriteBackup(t, r, "b1", now.Add(-time.Hour), nil)

	tr := &Tracker{}
	onItem := tr.Wrap(nil)
	rec := testRecord("r1", "b1", now.Add(-30*time.Minute))
	for _, it := range rec.Items {
		onItem(it)
	}
	sn1, err := Save(ctx, r, rec, tr)
	if err != nil {
		t.Fatal(err)
	}
	if sn1.Hostname != "target" || len(sn1.Paths) != 1 || sn1.Paths[0] != "k8s-restore://target" {
		t.Errorf("record snapshot host %q paths %v", sn1.Hostname, sn1.Paths)
	}
	if _, ok := retention.ParseExpiry(sn1.Tags); ok {
		t.Errorf("a record has an expiry tag: %v", sn1.Tags)
	}
	sn2, err := Save(ctx, r, testRecord("r2", "other", now.Add(-10*time.Minute)), nil)
	if err != nil {
		t.Fatal(err)
	}

	backups, err := catalog.ListBackups(ctx, r, nil)
	if err != nil || len(backups) != 1 || backups[0].Name != "b1" {
		t.Fatalf("ListBackups with records present: %d entries, %v", len(backups), err)
	}
	if _, err := catalog.FindBackupEntry(ctx, r, sn1.ID.Str()); !errors.Is(err, catalog.ErrBackupNotFound) {
		t.Errorf("a record passed for a backup: %v", err)
	}

	all, err := List(ctx, r, "", nil)
	if err != nil || len(all) != 2 || all[0].Name != "r1" || all[1].Name != "r2" || all[0].Backup != "b1" {
		t.Fatalf("List: %+v %v", all, err)
	}
	only, err := List(ctx, r, "b1", nil)
	if err != nil || len(only) != 1 || only[0].Name != "r1" {
		t.Fatalf("List --backup b1: %+v %v", only, err)
	}
	Load(ctx, r, all)
	for _, e := range all {
		if e.Err != nil || e.Record == nil || e.Record.Name != e.Name {
			t.Fatalf("Load %s: %+v %v", e.Name, e.Record, e.Err)
		}
	}
	got := all[0].Record
	if c := CountsOf(got.RestoreResult); c != (Counts{Created: 1, Existed: 1, Failed: 1, Skipped: 4}) {
		t.Errorf("counts %+v", c)
	}
	if !slices.Equal(got.Spec.ResourceModifiers, []string{"rule 0 (deployments.apps)"}) {
		t.Errorf("resource modifiers recorded as %q", got.Spec.ResourceModifiers)
	}
	if got.Spec.NamespaceMappings["app"] != "copy" || got.SourceCluster != "source" || len(got.Items) != 3 || got.Items[1].SourceNamespace != "app" {
		t.Errorf("record read back: %+v", got)
	}

	for _, c := range []struct{ spec, want string }{{"r1", "r1"}, {"latest", "r2"}, {sn1.ID.Str(), "r1"}} {
		e, n, err := Find(ctx, r, c.spec)
		if err != nil || e.Name != c.want || n != 1 {
			t.Errorf("Find(%q) = %+v, %d, %v", c.spec, e, n, err)
		}
	}
	if _, _, err := Find(ctx, r, "nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "cairn cluster restores") {
		t.Errorf("Find unknown: %v", err)
	}
	b1, _ := catalog.FindBackupEntry(ctx, r, "b1")
	if _, _, err := Find(ctx, r, b1.Snapshot.ID.Str()); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not a restore record") {
		t.Errorf("Find of a backup's ID: %v", err)
	}
	if taken, err := Taken(ctx, r, "r2"); !taken || err != nil {
		t.Errorf("Taken(r2) = %v, %v", taken, err)
	}
	if taken, err := Taken(ctx, r, "r3"); taken || err != nil {
		t.Errorf("Taken(r3) = %v, %v", taken, err)
	}

	// A second record of a name: the newest is found, and both counted.
	if _, err := Save(ctx, r, testRecord("r1", "b1", now), nil); err != nil {
		t.Fatal(err)
	}
	if e, n, err := Find(ctx, r, "r1"); err != nil || n != 2 || !e.Snapshot.Time.Equal(now) {
		t.Errorf("Find of a reused name: %v %d %v", e, n, err)
	}

	var log bytes.Buffer
	if err := WriteLog(ctx, r, sn1, &log); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"restore r1 of backup b1 (snapshot abababab of cluster source) into cluster target started by cairn test\n",
		"Namespaces: included: app; excluded: <none>\n",
		"Namespace mappings: app:copy\n",
		"created configmaps copy/a (from namespace app)\n",
		"failed configmaps copy/b: forbidden\n",
		"warning: a warning\n",
		"error: configmaps copy/b: forbidden\n",
		"restore r1: PartiallyFailed in 1.5s: 1 created, 0 updated, 1 existed, 1 failed, 4 skipped\n",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	if _, err := ReadRecord(ctx, r, sn2); err != nil {
		t.Error(err)
	}
	if err := WriteLog(ctx, r, b1.Snapshot, &log); err == nil || !strings.Contains(err.Error(), "not a complete restore record") {
		t.Errorf("log of a backup: %v", err)
	}
	// The records are ordinary snapshots.
	if sns, err := snapshot.ListSnapshots(ctx, r, snapshot.Filter{Tags: []string{"cairn-restore"}}, nil); err != nil || len(sns) != 3 {
		t.Errorf("snapshots tagged cairn-restore: %d, %v", len(sns), err)
	}
	// restic reads them: the repository checks, and the record's files dump.
	if out, err := testutil.RunRestic(t, dir, "restorelog-test", "check", "--read-data"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := testutil.RunRestic(t, dir, "restorelog-test", "dump", sn2.ID.String(), "/restore.json")
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := Parse(out); err != nil || rec.Name != "r2" {
		t.Errorf("restic dump of restore.json: %v %v", rec, err)
	}
}

func TestParseRefusesWhatIsNoRecord(t *testing.T) {
	for _, in := range []string{``, `{`, `{}`, `{"name":""}`, `[]`, `{"name":1}`} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
	rec, err := Parse([]byte(`{"name":"x","backup":"b","phase":"Completed","spec":{"restore_volumes":true}}`))
	if err != nil || rec.Name != "x" || !rec.Spec.RestoreVolumes {
		t.Errorf("Parse: %+v %v", rec, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"name":"x","items":[{"resource":"configmaps","name":"a","action":"created"}],"counts":{"configmaps":{"created":1}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever parses can be summed up and logged.
		_ = CountsOf(rec.RestoreResult)
		_ = Log(rec, nil)
	})
}
