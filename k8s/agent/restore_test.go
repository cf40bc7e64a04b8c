package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/volapi"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The marker replaces whatever the pod put at its name (a symlink to a
// file outside is replaced, not followed), leaves no temporary file, and
// is not written through a volume directory that is a symlink.
func TestWriteMarker(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "precious")
	os.WriteFile(outside, []byte("keep"), 0o600)
	marker := volapi.DoneMarker("r")
	if err := os.Symlink(outside, filepath.Join(dir, marker)); err != nil {
		t.Fatal(err)
	}
	if err := writeMarker(dir, marker, "node/agent/1"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(dir, marker))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("marker: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left in the volume: %v", ents)
	}
	link := filepath.Join(t.TempDir(), "vol")
	os.Symlink(t.TempDir(), link)
	if err := writeMarker(link, marker, "x"); err == nil {
		t.Error("marker written through a symlinked volume directory")
	}
}

func TestCheckPod(t *testing.T) {
	pod := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"namespace": "ns", "name": "db", "labels": map[string]any{volapi.LabelRestore: "r1"}},
		"spec": map[string]any{"nodeName": "node-a", "volumes": []any{
			map[string]any{"name": "data", "persistentVolumeClaim": map[string]any{"claimName": "data"}},
			map[string]any{"name": "cache", "emptyDir": map[string]any{}},
		}},
	}}
	spec := func(restore, vol, pvc string) volapi.VolumeRestoreSpec {
		return volapi.VolumeRestoreSpec{Pod: volapi.PodRef{Namespace: "ns", Name: "db"}, RestoreName: restore, Volume: vol, PVC: pvc}
	}
	for _, tc := range []struct {
		spec volapi.VolumeRestoreSpec
		node string
		want string
	}{
		{spec("r1", "data", "data"), "node-a", ""},
		{spec("r1", "cache", ""), "node-a", ""},
		{spec("r1", "data", "data"), "node-b", "runs on node"},
		{spec("r2", "data", "data"), "node-a", "was not created by restore r2"},
		{spec("r1", "data", "other"), "node-a", `the item names claim "other"`},
		{spec("r1", "cache", "data"), "node-a", `is claim ""`},
		{spec("r1", "logs", ""), "node-a", `has no volume "logs"`},
	} {
		err := checkPod(pod, tc.spec, tc.node)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v on %s: %v, want %q", tc.spec, tc.node, err, tc.want)
		}
	}
}
