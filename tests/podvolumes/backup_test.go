package podvolumes

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/tests/testutil"
)

type backupJSON struct {
	Phase      string `json:"phase"`
	SnapshotID string `json:"snapshot_id"`
	Volumes    []struct {
		Pod, Volume, Result string
		Files               uint64
	} `json:"volumes"`
}

func (e *env) backup(name string, want int, extra ...string) backupJSON {
	e.t.Helper()
	args := append([]string{"cluster", "backup", name, "--json", "--kubeconfig", e.c.Kubeconfig,
		"--include-namespaces", e.appNS, "--agent-namespace", e.agentNS, "--volume-timeout", "3m"}, extra...)
	var out backupJSON
	if err := json.Unmarshal([]byte(e.cairn(want, args...)), &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func genOpts(seed uint64) testutil.GenOptions {
	return testutil.GenOptions{Seed: seed, SmallFiles: 60, LargeFiles: []int64{1<<20 + 77}, EmptyFiles: 2, EmptyDirs: 2,
		Depth: 3, Unicode: true, Symlinks: true, Modes: true}
}

// Two pods on two nodes, three volumes (a claim of one pod, a RWX claim
// both mount, an emptyDir): one snapshot holds the manifests and the
// volume trees byte for byte, restic reads them, and a second backup reads
// only the files that changed.
func TestBackupPodVolumes(t *testing.T) {
	e := newEnv(t, "shop")
	pvData, pvShared := e.claim("data", "ReadWriteOnce"), e.claim("shared", "ReadWriteMany")
	dbUID := e.pod("db", "node-a", map[string]string{"backup.cairn.io/backup-volumes": "data,shared"},
		claimVol("data", "data"), claimVol("shared", "shared"), emptyDirVol("tmp"))
	// Velero's spelling; "shared" is copied once, from db (first by name).
	webUID := e.pod("web", "node-b", map[string]string{"backup.velero.io/backup-volumes": "shared,cache"},
		claimVol("shared", "shared"), emptyDirVol("cache"))

	dirs := map[string]string{
		"db/data":    e.csiDir(dbUID, pvData),
		"db/shared":  e.csiDir(dbUID, pvShared),
		"web/cache":  e.emptyDir(webUID, "cache"),
		"web/shared": e.csiDir(webUID, pvShared), // the same disk, as the node sees it
	}
	testutil.GenTree(t, dirs["db/data"], genOpts(1))
	testutil.GenTree(t, dirs["db/shared"], genOpts(2))
	testutil.GenTree(t, dirs["web/shared"], genOpts(2))
	testutil.GenTree(t, dirs["web/cache"], genOpts(3))
	testutil.GenTree(t, e.emptyDir(dbUID, "tmp"), genOpts(4)) // not selected

	e.agent("node-a")
	e.agent("node-b")
	b1 := e.backup("b1", 0)
	if b1.Phase != "Completed" {
		t.Fatalf("phase %s", b1.Phase)
	}
	if len(b1.Volumes) != 3 || b1.Volumes[0].Result != "Completed" || b1.Volumes[0].Files == 0 {
		t.Errorf("volumes in the JSON summary: %+v", b1.Volumes)
	}
	items := e.items("b1")
	if len(items) != 3 || items["db/data"] == nil || items["db/shared"] == nil || items["web/cache"] == nil {
		t.Fatalf("items %v", keys(items))
	}
	for k, vb := range items {
		st := vb.Status
		if st.Phase != volapi.PhaseCompleted || st.Tree == "" || st.SnapshotID == "" || st.Files == 0 || st.Bytes == 0 || st.BytesAdded == 0 || st.Attempts != 1 {
			t.Errorf("%s: status %+v", k, st)
		}
	}

	// restic lists the volumes in the backup's snapshot, next to the manifests.
	ls := e.restic("ls", b1.SnapshotID)
	for _, want := range []string{"/volumes/" + e.appNS + "/db/data/large-00.bin", "/volumes/" + e.appNS + "/db/shared/deep-1",
		"/volumes/" + e.appNS + "/web/cache/" + testutil.UnicodeName, "/resources/namespaces/" + e.appNS + "/pods/db.yaml", "/backup.json"} {
		if !strings.Contains(ls, want+"\n") {
			t.Errorf("restic ls lacks %s", want)
		}
	}
	if strings.Contains(ls, "/volumes/"+e.appNS+"/web/shared") || strings.Contains(ls, "/db/tmp") {
		t.Error("a volume was copied that should not be")
	}
	// Byte-identical, with modes and times, as restic restores them.
	out := filepath.Join(e.dir, "restored")
	e.restic("restore", b1.SnapshotID+":/volumes", "--target", out)
	for k, src := range map[string]string{"db/data": dirs["db/data"], "db/shared": dirs["db/shared"], "web/cache": dirs["web/cache"]} {
		if n := testutil.CompareTrees(t, src, filepath.Join(out, e.appNS, k), testutil.CompareOptions{IgnoreRootMeta: true, CompareOwner: true}); n < 60 {
			t.Errorf("%s: only %d entries compared", k, n)
		}
	}
	desc := e.cairn(0, "cluster", "describe", "b1", "--details")
	for _, want := range []string{"db data: Completed", "claim " + e.appNS + "/data, PV " + pvData + ", storage class manual, size 1Gi, node node-a",
		"web cache: Completed", "path /volumes/" + e.appNS + "/web/cache"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe lacks %q:\n%s", want, desc)
		}
	}

	// Second backup: one file changed, one added, in data; nothing else.
	changed := filepath.Join(dirs["db/data"], "large-00.bin")
	f, err := os.OpenFile(changed, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("appended")
	f.Close()
	os.WriteFile(filepath.Join(dirs["db/data"], "new.txt"), []byte("new file\n"), 0o644)
	changedSize := int64(1<<20 + 77 + len("appended") + len("new file\n"))
	time.Sleep(10 * time.Millisecond)
	b2 := e.backup("b2", 0)
	items2 := e.items("b2")
	data, cache := items2["db/data"].Status, items2["web/cache"].Status
	if data.ParentSnapshotID != items["db/data"].Status.SnapshotID || data.FilesChanged != 1 || data.FilesNew != 1 ||
		data.FilesUnmodified != data.Files-2 || data.BytesRead != changedSize {
		t.Errorf("data, second backup: %+v (want 1 changed, 1 new, %d bytes read)", data, changedSize)
	}
	if cache.FilesUnmodified != cache.Files || cache.BytesRead != 0 || cache.ParentSnapshotID != items["web/cache"].Status.SnapshotID {
		t.Errorf("cache, second backup: %+v (want nothing read)", cache)
	}
	t.Logf("second backup: data read %d of %d bytes (%d of %d files unmodified); cache read %d of %d bytes",
		data.BytesRead, data.Bytes, data.FilesUnmodified, data.Files, cache.BytesRead, cache.Bytes)
	out2 := filepath.Join(e.dir, "restored2")
	e.restic("restore", b2.SnapshotID+":/volumes/"+e.appNS+"/db/data", "--target", out2)
	testutil.CompareTrees(t, dirs["db/data"], out2, testutil.CompareOptions{IgnoreRootMeta: true})

	// The volume snapshots carry the backup's expiry and go with it.
	var vsn []struct{ Tags []string }
	if err := json.Unmarshal([]byte(e.cairn(0, "snapshots", "--json", "--tag", "volume-of=b1")), &vsn); err != nil || len(vsn) != 3 {
		t.Fatalf("volume snapshots of b1: %v %+v", err, vsn)
	}
	if !slices.ContainsFunc(vsn[0].Tags, func(s string) bool { return strings.HasPrefix(s, "expires=") }) {
		t.Errorf("volume snapshot tags %v: no expiry", vsn[0].Tags)
	}
	if del := e.cairn(0, "cluster", "delete", "b1"); !strings.Contains(del, "and 3 snapshots of its pod volumes") {
		t.Errorf("cluster delete: %s", del)
	}
	if left := e.cairn(0, "snapshots", "--json", "--tag", "volume-of=b1"); strings.TrimSpace(left) != "[]" {
		t.Errorf("volume snapshots left after delete: %s", left)
	}
	e.cairn(0, "check")
	e.restic("check")
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
