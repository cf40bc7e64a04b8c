package podvolumes

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/tests/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Whoever may create VolumeRestores picks the pod and the source, and the
// agent writes as root. An item whose tree is not the one its snapshot
// holds at its /volumes path, whose path leads out of /volumes, or whose
// pod its restore did not create, is Failed with a clear message and
// nothing is written; the same item told the truth restores.
func TestAgentRefusesForgedRestore(t *testing.T) {
	e := newEnv(t, "forge")
	uid := e.pod("p", "node-a", map[string]string{"backup.cairn.io/backup-volumes": "v"}, emptyDirVol("v"))
	testutil.GenTree(t, e.emptyDir(uid, "v"), genOpts(31))
	e.agent("node-a", "--mount-wait", "3s")
	b := e.backup("b1", 0)
	realTree := e.items("b1")["p/v"].Status.Tree
	var sns []struct{ ID, Tree string }
	if err := json.Unmarshal([]byte(e.cairn(0, "snapshots", "--json")), &sns); err != nil {
		t.Fatal(err)
	}
	rootTree := ""
	for _, sn := range sns {
		if sn.ID == b.SnapshotID {
			rootTree = sn.Tree
		}
	}
	if rootTree == "" {
		t.Fatalf("snapshot %s not listed", b.SnapshotID)
	}

	victim := obj("v1", "Pod", "victim", e.appNS, map[string]any{"spec": map[string]any{
		"nodeName": "node-a", "automountServiceAccountToken": false,
		"containers": []any{map[string]any{"name": "app", "image": "registry.example/app:1"}},
		"volumes":    []any{emptyDirVol("v")},
	}})
	victim.SetLabels(map[string]string{volapi.LabelRestore: "forged"})
	victimUID := string(e.create(gvrPod, e.appNS, victim).GetUID())
	dir := e.emptyDir(victimUID, "v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	item := func(name, restore, tree, path string) *volapi.VolumeRestore {
		t.Helper()
		spec := volapi.VolumeRestoreSpec{
			Pod: volapi.PodRef{Namespace: e.appNS, Name: "victim", UID: victimUID}, Volume: "v",
			Repository:  e.items("b1")["p/v"].Spec.Repository,
			RestoreName: restore, DoneMarker: volapi.DoneMarker(restore),
			Source: volapi.RestoreSource{SnapshotID: b.SnapshotID, Tree: tree, Path: path},
		}
		vr := volapi.NewVolumeRestore(e.agentNS, spec)
		vr.Name = name
		u, err := vr.ToUnstructured()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.cl.Dynamic.Resource(volapi.VolumeRestoreResource).Namespace(e.agentNS).Create(t.Context(), u, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var out *volapi.VolumeRestore
		e.waitFor(time.Minute, "item "+name+" done", func() bool {
			out = e.restores(restore)["victim/v"]
			return out != nil && out.Status.Phase.Done()
		})
		e.cl.Dynamic.Resource(volapi.VolumeRestoreResource).Namespace(e.agentNS).Delete(t.Context(), name, metav1.DeleteOptions{})
		return out
	}
	volPath := "/volumes/" + e.appNS + "/p/v"
	for _, tc := range []struct{ name, restore, tree, path, want string }{
		{"made-up-tree", "forged", strings.Repeat("ab", 32), volPath, "is not the one snapshot"},
		{"the-snapshots-root-tree", "forged", rootTree, volPath, "is not the one snapshot"},
		{"outside-volumes", "forged", realTree, "/resources/namespaces/" + e.appNS, "is not /volumes/<namespace>/<pod>/<volume>"},
		{"dot-dot", "forged", realTree, "/volumes/../x/y", "is not a name"},
		{"not-the-restores-pod", "other", realTree, volPath, "was not created by restore other"},
	} {
		vr := item(tc.name, tc.restore, tc.tree, tc.path)
		if vr.Status.Phase != volapi.PhaseFailed || !strings.Contains(vr.Status.Message, tc.want) {
			t.Errorf("%s: %s %q, want Failed with %q", tc.name, vr.Status.Phase, vr.Status.Message, tc.want)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("%s: the agent wrote %d entries into the pod's volume", tc.name, len(ents))
		}
		t.Logf("%s: %s", tc.name, vr.Status.Message)
	}
	// The control: the true source restores into the same pod.
	if vr := item("genuine", "forged", realTree, volPath); vr.Status.Phase != volapi.PhaseCompleted {
		t.Fatalf("genuine item: %+v", vr.Status)
	}
	testutil.CompareTrees(t, e.emptyDir(uid, "v"), dir, testutil.CompareOptions{IgnoreRootMeta: true, CompareOwner: true, Ignore: isMarker})
	if _, err := os.Lstat(filepath.Join(dir, ".cairn-restore-forged")); err != nil {
		t.Error(err)
	}

	// A volume the kubelet never makes: waited for, then Failed.
	if err := os.RemoveAll(filepath.Join(e.kubeletRoot, "pods", victimUID)); err != nil {
		t.Fatal(err)
	}
	vr := item("unmounted", "forged", realTree, volPath)
	if vr.Status.Phase != volapi.PhaseFailed || !strings.Contains(vr.Status.Message, "gave up after 3s") || !strings.Contains(vr.Status.Message, "pod directory not found") {
		t.Errorf("unmounted: %s %q", vr.Status.Phase, vr.Status.Message)
	}
	t.Logf("unmounted: %s", vr.Status.Message)
}

// The agent stops while it writes a big file into the volume: killed
// (SIGKILL: the heartbeat goes stale) or told to stop (SIGTERM: it
// releases the item). The next agent restores again over the partial
// files (attempt 2); the volume ends byte-identical, and the marker is
// never there before that.
func TestAgentRestoreStoppedMidVolume(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGKILL", syscall.SIGKILL}, {"SIGTERM", syscall.SIGTERM}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "rbig")
			uid := e.pod("big", "node-a", map[string]string{"backup.cairn.io/backup-volumes": "blob"}, emptyDirVol("blob"))
			src := e.emptyDir(uid, "blob")
			testutil.GenTree(t, src, genOpts(32))
			writeRandom(t, filepath.Join(src, "big.bin"), 24<<20, 7)
			// The volume was restored before under the same name: its old
			// marker is never put back by the data, only after it.
			if err := os.WriteFile(filepath.Join(src, ".cairn-restore-r1"), []byte("old marker\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			fast := e.agent("node-a")
			if b := e.backup("b1", 0); b.Phase != "Completed" {
				t.Fatalf("backup %s", b.Phase)
			}
			fast.stop(syscall.SIGTERM)

			copyNS := e.appNS + "-copy"
			e.restoreInto("b1", "r1", copyNS)
			dst := e.emptyDir(e.schedule(copyNS, "big", "node-a"), "blob")
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			// Reads at 1 MiB/s keep the agent in big.bin for about 24 s.
			slow := e.agent("node-a", "--limit-download", "1024")
			e.waitFor(time.Minute, "the agent writing big.bin", func() bool {
				vr := e.restores("r1")["big/blob"]
				return vr != nil && vr.Status.Progress != nil && vr.Status.Progress.BytesDone > 2<<20
			})
			slow.stop(tc.sig)
			left := e.restores("r1")["big/blob"].Status
			if left.Phase != volapi.PhaseInProgress {
				t.Fatalf("after %v the item is %+v", tc.sig, left)
			}
			if tc.sig == syscall.SIGTERM && (left.Agent != "" || !strings.Contains(left.Message, "stopped")) {
				t.Errorf("SIGTERM did not release the item: %+v", left)
			}
			if _, err := os.Lstat(filepath.Join(dst, ".cairn-restore-r1")); err == nil {
				t.Fatal("done marker written by the stopped agent")
			}
			if fi, err := os.Stat(filepath.Join(dst, "big.bin")); err == nil {
				t.Logf("left behind: big.bin with %d of %d bytes", fi.Size(), 24<<20)
			}

			e.agent("node-a")
			st := e.waitRestored("r1", 1)["big/blob"].Status
			if st.Phase != volapi.PhaseCompleted || st.Attempts != 2 {
				t.Fatalf("item %+v", st)
			}
			testutil.CompareTrees(t, src, dst, testutil.CompareOptions{IgnoreRootMeta: true, CompareOwner: true, Ignore: isMarker})
			if m, err := os.ReadFile(filepath.Join(dst, ".cairn-restore-r1")); err != nil || !strings.HasPrefix(string(m), "restored by cairn agent") {
				t.Errorf("done marker %q %v", m, err)
			}
			e.cairn(0, "cluster", "restore-wait", "--volumes-root", waitRoot(t, map[string]string{"blob": dst}),
				"--marker", "r1", "--volumes", "blob", "--timeout", "10s")
		})
	}
}
