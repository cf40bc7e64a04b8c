package podvolumes

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/tests/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The CLI side of a restore with data, on a backup the agents made: the
// copy's claim gets a new volume (the PV is not restored), the restored
// pod waits in a first init container, and each volume's VolumeRestore
// names the very tree the agent backed up, for the new pod.
func TestRestoreHandsVolumesToAgents(t *testing.T) {
	e := newEnv(t, "rshop")
	pvData := e.claim("data", "ReadWriteOnce")
	dbUID := e.pod("db", "node-a", map[string]string{"backup.cairn.io/backup-volumes": "data,cache"},
		claimVol("data", "data"), emptyDirVol("cache"))
	testutil.GenTree(t, e.csiDir(dbUID, pvData), genOpts(11))
	testutil.GenTree(t, e.emptyDir(dbUID, "cache"), genOpts(12))
	e.agent("node-a")
	b1 := e.backup("b1", 0)
	if b1.Phase != "Completed" {
		t.Fatalf("backup phase %s", b1.Phase)
	}
	backedUp := e.items("b1")

	copyNS := e.appNS + "-copy"
	t.Cleanup(func() { e.cl.Dynamic.Resource(gvrNS).Delete(context.Background(), copyNS, metav1.DeleteOptions{}) })
	out := e.cairn(0, "cluster", "restore", "b1", "--json", "--kubeconfig", e.c.Kubeconfig, "--restore-name", "r1",
		"--include-namespaces", e.appNS, "--namespace-mappings", e.appNS+":"+copyNS,
		"--agent-namespace", e.agentNS, "--restore-helper-image", "registry.example/cairn:test")
	var res struct {
		Phase string
		Items []struct{ Resource, Namespace, Name, Action, Reason string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Phase != "Completed" {
		t.Errorf("restore phase %s:\n%s", res.Phase, out)
	}
	if !slices.ContainsFunc(res.Items, func(it struct{ Resource, Namespace, Name, Action, Reason string }) bool {
		return it.Resource == "persistentvolumes" && it.Name == pvData && it.Action == "skipped" && strings.Contains(it.Reason, "data is in the backup")
	}) {
		t.Errorf("PV %s not reported as left to provisioning:\n%s", pvData, out)
	}

	pvc, err := e.cl.Dynamic.Resource(gvrPVC).Namespace(copyNS).Get(t.Context(), "data", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedString(pvc.Object, "spec", "volumeName"); v != "" {
		t.Errorf("the copy's claim names volume %q", v)
	}
	pv, err := e.cl.Dynamic.Resource(gvrPV).Get(t.Context(), pvData, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns, _, _ := unstructured.NestedString(pv.Object, "spec", "claimRef", "namespace"); ns != e.appNS {
		t.Errorf("the original PV is claimed from %q", ns)
	}

	pod, err := e.cl.Dynamic.Resource(gvrPod).Namespace(copyNS).Get(t.Context(), "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inits, _, _ := unstructured.NestedSlice(pod.Object, "spec", "initContainers")
	if len(inits) != 1 {
		t.Fatalf("init containers %v", inits)
	}
	wait := inits[0].(map[string]any)
	args, _ := json.Marshal(wait["args"])
	if wait["name"] != volapi.RestoreWaitContainer || wait["image"] != "registry.example/cairn:test" ||
		string(args) != `["cluster","restore-wait","--volumes-root","/cairn-restore","--marker","r1","--volumes","data,cache"]` {
		t.Errorf("wait container %v %v %s", wait["name"], wait["image"], args)
	}

	l, err := e.cl.Dynamic.Resource(volapi.VolumeRestoreResource).Namespace(e.agentNS).List(t.Context(),
		metav1.ListOptions{LabelSelector: volapi.LabelRestore + "=r1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 2 {
		t.Fatalf("%d VolumeRestores, want 2", len(l.Items))
	}
	for i := range l.Items {
		vr, err := volapi.VolumeRestoreFrom(&l.Items[i])
		if err != nil {
			t.Fatal(err)
		}
		s := vr.Spec
		vb := backedUp["db/"+s.Volume]
		switch {
		case vb == nil:
			t.Errorf("%s: volume %q was not backed up", vr.Name, s.Volume)
		case s.Source.Tree != vb.Status.Tree || s.Source.SnapshotID != b1.SnapshotID || s.Source.Path != "/volumes/"+e.appNS+"/db/"+s.Volume:
			t.Errorf("%s: source %+v; the agent saved tree %s", vr.Name, s.Source, vb.Status.Tree)
		case s.Pod.Namespace != copyNS || s.Pod.Name != "db" || s.Pod.UID != string(pod.GetUID()) || s.DoneMarker != ".cairn-restore-r1":
			t.Errorf("%s: pod %+v, marker %q", vr.Name, s.Pod, s.DoneMarker)
		case (s.Volume == "data") != (s.PVC == "data"):
			t.Errorf("%s: volume %s, claim %q", vr.Name, s.Volume, s.PVC)
		case s.Repository.ID != vb.Spec.Repository.ID:
			t.Errorf("%s: repository %q, the backup's %q", vr.Name, s.Repository.ID, vb.Spec.Repository.ID)
		}
	}
}
