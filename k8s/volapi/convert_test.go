package volapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func fullBackup() *VolumeBackup {
	now := metav1.NewTime(time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC))
	vb := NewVolumeBackup("cairn-system", VolumeBackupSpec{
		Node: "node-1", Pod: PodRef{Namespace: "shop", Name: "db-0", UID: "0f1e2d3c"},
		Volume: "data", PVC: "data-db-0", PV: "pvc-1234",
		Repository: RepositoryRef{ID: "abcd", Location: "s3:https://minio/bucket"},
		BackupName: "nightly", Tags: []string{"x=y"},
		Parent:   ParentHint{PVC: "shop/data-db-0", Namespace: "shop", Workload: "StatefulSet/db", Volume: "data"},
		Uploader: UploaderOptions{ParallelFiles: 4, Excludes: []string{"*.tmp"}},
	})
	vb.Status = VolumeBackupStatus{
		Phase: PhaseCompleted, SnapshotID: "s1", ParentSnapshotID: "s0", Tree: "t1",
		Files: 3, Bytes: 300, BytesAdded: 100, Errors: 1,
		Progress:  &Progress{BytesDone: 300, BytesTotal: 300},
		StartTime: &now, CompletionTime: &now, Message: "1 file unreadable",
		Ownership: Ownership{Agent: "node-1/agent-x/1", Heartbeat: &metav1.MicroTime{Time: now.Time}, Attempts: 2},
	}
	return vb
}

func TestConvertRoundTrip(t *testing.T) {
	vb := fullBackup()
	u, err := vb.ToUnstructured()
	if err != nil {
		t.Fatal(err)
	}
	// The inline Ownership lands directly in status, as the schema says.
	if a, _, _ := unstructured.NestedString(u.Object, "status", "agent"); a != "node-1/agent-x/1" {
		t.Errorf("status.agent = %q in %v", a, u.Object["status"])
	}
	if n, _, _ := unstructured.NestedInt64(u.Object, "status", "progress", "bytesTotal"); n != 300 {
		t.Errorf("status.progress.bytesTotal = %d", n)
	}
	if u.GetAPIVersion() != "cairn.io/v1alpha1" || u.GetKind() != "VolumeBackup" || u.GetLabels()[LabelNode] != "node-1" || u.GetLabels()[LabelBackup] != "nightly" {
		t.Errorf("type or labels wrong: %s %s %v", u.GetAPIVersion(), u.GetKind(), u.GetLabels())
	}
	back, err := VolumeBackupFrom(u)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, back, vb)

	now := metav1.NewTime(time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC))
	vr := NewVolumeRestore("cairn-system", VolumeRestoreSpec{
		Pod: PodRef{Namespace: "copy", Name: "db-0", UID: "u2"}, Volume: "data", PVC: "data-db-0",
		Repository: RepositoryRef{ID: "abcd"}, RestoreName: "r1",
		Source: RestoreSource{SnapshotID: "s9", Tree: "t9", Path: "/volumes/shop/db-0/data"}, DoneMarker: ".cairn-restored",
	})
	vr.Status = VolumeRestoreStatus{Phase: PhaseInProgress, Files: 1, Progress: &Progress{BytesDone: 1}, StartTime: &now,
		Ownership: Ownership{Agent: "a", Heartbeat: &metav1.MicroTime{Time: now.Time}}}
	if _, ok := vr.Labels[LabelNode]; ok {
		t.Errorf("node label without a node: %v", vr.Labels)
	}
	ur, err := vr.ToUnstructured()
	if err != nil {
		t.Fatal(err)
	}
	vr2, err := VolumeRestoreFrom(ur)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, vr2, vr)
	// A VolumeRestore is not read as a VolumeBackup, nor another version.
	if _, err := VolumeBackupFrom(ur); err == nil || !strings.Contains(err.Error(), "not a VolumeBackup") {
		t.Errorf("restore read as backup: %v", err)
	}
	u.SetAPIVersion("cairn.io/v1beta9")
	if _, err := VolumeBackupFrom(u); err == nil || !strings.Contains(err.Error(), "version v1beta9") {
		t.Errorf("other version read: %v", err)
	}
	// Unknown fields (a newer writer) are ignored; a wrong type is an error.
	u.SetAPIVersion("cairn.io/v1alpha1")
	unstructured.SetNestedField(u.Object, "later", "spec", "futureField")
	if _, err := VolumeBackupFrom(u); err != nil {
		t.Errorf("unknown field refused: %v", err)
	}
	unstructured.SetNestedField(u.Object, "many", "status", "files")
	if _, err := VolumeBackupFrom(u); err == nil {
		t.Error("string files accepted")
	}
}

func TestNames(t *testing.T) {
	if NodeLabelValue("node-1") != "node-1" {
		t.Error("short node name changed")
	}
	long := strings.Repeat("n", 70) + ".example.com"
	v := NodeLabelValue(long)
	if len(v) > 63 || v != NodeLabelValue(long) || v == NodeLabelValue(long+"x") {
		t.Errorf("long node name label %q", v)
	}
	a, b := ItemName("nightly", "uid-1", "data"), ItemName("nightly", "uid-1", "cache")
	if a == b || a != ItemName("nightly", "uid-1", "data") || !strings.HasPrefix(a, "nightly-") {
		t.Errorf("item names %q %q", a, b)
	}
}

// sameJSON compares through JSON: decoded times are in time.Local, equal
// instants but not DeepEqual.
func sameJSON(t *testing.T, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("round trip changed it:\n%s\n%s", g, w)
	}
}
