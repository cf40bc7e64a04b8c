package restore

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/backup"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

const rvObjects = `
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: rv-sc}
provisioner: example.com/none
volumeBindingMode: Immediate
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: rv-sc2}
provisioner: example.com/none
volumeBindingMode: Immediate
---
apiVersion: v1
kind: Namespace
metadata: {name: rv-app}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: rv-pv-data}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: rv-sc
  hostPath: {path: /tmp/rv-pv-data}
  claimRef: {namespace: rv-app, name: data}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: rv-app}
spec: {accessModes: [ReadWriteMany], storageClassName: rv-sc, volumeName: rv-pv-data, resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: rv-pv-keep}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: rv-sc
  hostPath: {path: /tmp/rv-pv-keep}
  claimRef: {namespace: rv-app, name: keep}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: keep, namespace: rv-app}
spec: {accessModes: [ReadWriteOnce], storageClassName: rv-sc, volumeName: rv-pv-keep, resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: rv-pv-live}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: rv-sc
  hostPath: {path: /tmp/rv-pv-live}
  claimRef: {namespace: rv-app, name: live}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: live, namespace: rv-app}
spec: {accessModes: [ReadWriteOnce], storageClassName: rv-sc, volumeName: rv-pv-live, resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: rv-pv-gone}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: rv-sc
  hostPath: {path: /tmp/rv-pv-gone}
  claimRef: {namespace: rv-app, name: scratch}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: scratch, namespace: rv-app}
spec: {accessModes: [ReadWriteOnce], storageClassName: rv-sc, volumeName: rv-pv-gone, resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: rv-app}
spec:
  initContainers:
  - {name: restore-wait, image: velero/velero-restore-helper:v1.14, args: [abc]}
  - {name: migrate, image: busybox, command: ["true"]}
  containers:
  - name: db
    image: busybox
    securityContext: {runAsUser: 999, runAsNonRoot: true}
    volumeMounts: [{name: data, mountPath: /data}, {name: cache, mountPath: /cache}, {name: scratch, mountPath: /scratch}]
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
  - {name: cache, emptyDir: {}}
  - {name: scratch, persistentVolumeClaim: {claimName: scratch}}
---
apiVersion: v1
kind: Pod
metadata: {name: reader, namespace: rv-app}
spec:
  containers:
  - {name: r, image: busybox, volumeMounts: [{name: shared, mountPath: /data, readOnly: true}]}
  volumes:
  - {name: shared, persistentVolumeClaim: {claimName: data}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: rv-app}
spec:
  containers:
  - {name: w, image: busybox, volumeMounts: [{name: tmp, mountPath: /tmp}]}
  volumes:
  - {name: tmp, emptyDir: {}}
`

// rvHook archives real directories as the volumes of pod db: data (the
// claim "data") and cache (an emptyDir); volume tmp of pod web failed.
func rvHook(t *testing.T) backup.VolumeHook {
	dirs := map[string]string{}
	for _, v := range []string{"data", "cache"} {
		d := filepath.Join(t.TempDir(), v)
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "sub", v+".txt"), []byte("contents of "+v+"\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		dirs[v] = d
	}
	return func(ctx context.Context, a *archiver.Archiver, in backup.VolumeInput) (*repo.ID, []layout.VolumeInfo, error) {
		dir := func(name string, sub repo.ID) *snapshot.Node {
			return &snapshot.Node{Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, ModTime: in.Time, Subtree: &sub}
		}
		pod := &snapshot.Tree{}
		for _, v := range []string{"cache", "data"} {
			n, err := a.SaveDir(ctx, dirs[v], nil)
			if err != nil {
				return nil, nil, err
			}
			pod.Nodes = append(pod.Nodes, dir(v, *n.Subtree))
		}
		podID, err := a.SaveTree(ctx, pod)
		if err != nil {
			return nil, nil, err
		}
		nsID, err := a.SaveTree(ctx, &snapshot.Tree{Nodes: []*snapshot.Node{dir("db", podID)}})
		if err != nil {
			return nil, nil, err
		}
		root, err := a.SaveTree(ctx, &snapshot.Tree{Nodes: []*snapshot.Node{dir("rv-app", nsID)}})
		return &root, []layout.VolumeInfo{
			{Namespace: "rv-app", Pod: "db", Volume: "data", PVC: "data", PV: "rv-pv-data", Result: layout.VolumeCompleted, Files: 1},
			{Namespace: "rv-app", Pod: "db", Volume: "cache", Result: layout.VolumeCompleted, Files: 1},
			{Namespace: "rv-app", Pod: "web", Volume: "tmp", Result: layout.VolumeFailed, Error: "the agent died"},
			{Namespace: "rv-app", Pod: "reader", Volume: "shared", PVC: "data", Result: layout.VolumeSkipped, Reason: "copied through db"},
		}, err
	}
}

// TestRestoreVolumeData backs up a namespace whose pod volumes have data
// (through the VolumeHook, as the agents' trees come in) and restores it
// into a mapped namespace: the PVs of claims with data are left to
// provisioning, the pods wait in a first init container, and the agents
// get one VolumeRestore per volume.
func TestRestoreVolumeData(t *testing.T) {
	cl := rtConnect(t)
	ctx := context.Background()
	if err := volapi.Install(ctx, cl.Dynamic, nil); err != nil {
		t.Fatal(err)
	}
	rtCleanup(t, cl, "rv-app", "rv-copy", "rv-copy2", "rv-plain", "rv-agents")
	t.Cleanup(func() {
		for _, pv := range []string{"rv-pv-data", "rv-pv-keep", "rv-pv-live", "rv-pv-gone"} {
			_ = cl.Dynamic.Resource(gvrPV).Delete(context.Background(), pv, metav1.DeleteOptions{})
		}
	})
	rtApply(t, cl, rvObjects)
	rtApply(t, cl, "apiVersion: v1\nkind: Namespace\nmetadata: {name: rv-agents}\n")
	rtWaitFor(t, "claims bound", 60*time.Second, func() bool {
		for _, c := range []string{"data", "keep", "live", "scratch"} {
			if ph, _, _ := unstructured.NestedString(rtGet(t, cl, gvrPVC, "rv-app", c).Object, "status", "phase"); ph != "Bound" {
				return false
			}
		}
		return true
	})

	r := rtRepo(t)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	bres, err := backup.Backup(ctx, cl, r, backup.BackupOptions{Name: "rv", Spec: layout.BackupSpec{IncludeNamespaces: []string{"rv-app"}}, Volumes: rvHook(t)})
	if err != nil {
		t.Fatal(err)
	}
	sn := bres.Snapshot

	// The Retain PV "keep" and its claim are gone from the cluster: the
	// restore creates the PV as it was, and the claim binds it again.
	rtDeleteAndWait(t, cl, rtRef{gvrPVC, "rv-app", "keep"})
	rtDeleteAndWait(t, cl, rtRef{gvrPV, "", "rv-pv-keep"})

	opts := RestoreOptions{
		Name: "rv-r1", IncludeNamespaces: []string{"rv-app"},
		NamespaceMappings:    map[string]string{"rv-app": "rv-copy"},
		StorageClassMappings: map[string]string{"rv-sc": "rv-sc2"},
		VolumeData:           &VolumeDataOptions{HelperImage: "example.com/cairn:test", AgentNamespace: "rv-agents"},
	}
	res := rtRestore(t, r, sn, cl, opts)
	items := rtItems(res)
	rtWantAction(t, items, "persistentvolumes rv-pv-data", ActionSkipped)
	if !strings.Contains(items["persistentvolumes rv-pv-data"].Reason, "data is in the backup") {
		t.Errorf("rv-pv-data: reason %q", items["persistentvolumes rv-pv-data"].Reason)
	}
	rtWantAction(t, items, "persistentvolumes rv-pv-gone", ActionSkipped)
	rtWantAction(t, items, "persistentvolumes rv-pv-keep", ActionCreated)
	rtWantAction(t, items, "persistentvolumes rv-pv-live", ActionSkippedExists)
	if rtGet(t, cl, gvrPV, "", "rv-pv-data").GetLabels()[layout.LabelRestoreName] != "" {
		t.Error("the PV of the claim with data was restored over")
	}

	// Claims: new volumes from the mapped class, except "keep", whose PV
	// this restore created.
	for _, c := range []string{"data", "scratch", "live", "keep"} {
		pvc := rtGet(t, cl, gvrPVC, "rv-copy", c)
		vol, _, _ := unstructured.NestedString(pvc.Object, "spec", "volumeName")
		sc, _, _ := unstructured.NestedString(pvc.Object, "spec", "storageClassName")
		want := ""
		if c == "keep" {
			want = "rv-pv-keep"
		}
		if vol != want || sc != "rv-sc2" {
			t.Errorf("claim %s: volumeName %q (want %q), class %q", c, vol, want, sc)
		}
		// The PV controller annotates claims anew (bound ones, and those
		// waiting for a provisioner); an unbound one shows what was sent.
		for _, a := range []string{"pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller", "volume.kubernetes.io/selected-node"} {
			if _, ok := pvc.GetAnnotations()[a]; ok && c != "keep" {
				t.Errorf("claim %s kept annotation %s", c, a)
			}
		}
	}
	rtWaitFor(t, "the restored Retain PV bound to the copy's claim", 60*time.Second, func() bool {
		ph, _, _ := unstructured.NestedString(rtGet(t, cl, gvrPVC, "rv-copy", "keep").Object, "status", "phase")
		return ph == "Bound"
	})
	rvWantBound(t, cl, "rv-pv-live", "rv-app", "live")

	// Pods: the wait container first, mounting the volumes with data.
	db := rtGet(t, cl, gvrPod, "rv-copy", "db")
	rvWantInit(t, db, []string{volapi.RestoreWaitContainer, "migrate"}, "data,cache")
	inits, _, _ := unstructured.NestedSlice(db.Object, "spec", "initContainers")
	if u, _, _ := unstructured.NestedInt64(inits[0].(map[string]any), "securityContext", "runAsUser"); u != 999 {
		t.Errorf("wait container runs as user %d, want the application's 999", u)
	}
	rvWantInit(t, rtGet(t, cl, gvrPod, "rv-copy", "reader"), []string{volapi.RestoreWaitContainer}, "shared")
	rvWantInit(t, rtGet(t, cl, gvrPod, "rv-copy", "web"), nil, "")

	// One VolumeRestore per volume; the claim shared by two pods once.
	vrs := rvVolumeRestores(t, cl, "rv-r1")
	if len(vrs) != 2 {
		t.Fatalf("%d VolumeRestores, want 2: %+v", len(vrs), vrs)
	}
	for _, vr := range vrs {
		s := vr.Spec
		want := "/volumes/rv-app/db/" + s.Volume
		if s.PVC == "data" {
			want = "/volumes/rv-app/db/data"
		}
		tree, err := snapshot.FindNode(ctx, snapshot.NewTreeLoader(r, 16), *sn.Tree, want)
		if err != nil {
			t.Fatal(err)
		}
		pod := rtGet(t, cl, gvrPod, "rv-copy", s.Pod.Name)
		switch {
		case s.Source.Path != want || s.Source.Tree != tree.Subtree.String() || s.Source.SnapshotID != sn.ID.String():
			t.Errorf("%s: source %+v, want %s (tree %s)", vr.Name, s.Source, want, tree.Subtree)
		case s.Pod.Namespace != "rv-copy" || pod == nil || types.UID(s.Pod.UID) != pod.GetUID():
			t.Errorf("%s: pod %+v", vr.Name, s.Pod)
		case s.Node != "" || vr.Labels[volapi.LabelNode] != "":
			t.Errorf("%s: node %q set before the pod is scheduled", vr.Name, s.Node)
		case s.DoneMarker != ".cairn-restore-rv-r1" || s.RestoreName != "rv-r1" || s.Repository.ID != r.Config().ID:
			t.Errorf("%s: marker %q, restore %q, repository %q", vr.Name, s.DoneMarker, s.RestoreName, s.Repository.ID)
		case s.Volume == "cache" && (s.Pod.Name != "db" || s.PVC != ""):
			t.Errorf("%s: cache volume of %s, claim %q", vr.Name, s.Pod.Name, s.PVC)
		case s.PVC == "data" && !(s.Pod.Name == "db" && s.Volume == "data") && !(s.Pod.Name == "reader" && s.Volume == "shared"):
			t.Errorf("%s: claim data as volume %s of %s", vr.Name, s.Volume, s.Pod.Name)
		}
	}
	if len(res.Warnings) > 0 { // every pod with data was restored
		t.Errorf("warnings %q", res.Warnings)
	}

	// Update policy into another copy: the live PV stays with its claim.
	opts.Name, opts.NamespaceMappings = "rv-r2", map[string]string{"rv-app": "rv-copy2"}
	opts.ExistingResourcePolicy = ExistingUpdate
	res = rtRestore(t, r, sn, cl, opts)
	rtWantAction(t, rtItems(res), "persistentvolumes rv-pv-live", ActionUpdated)
	rvWantBound(t, cl, "rv-pv-live", "rv-app", "live")
	if vol, _, _ := unstructured.NestedString(rtGet(t, cl, gvrPVC, "rv-copy2", "live").Object, "spec", "volumeName"); vol != "" {
		t.Errorf("the copy's claim points at the live PV %q", vol)
	}

	// Without volume data: no wait container, no items; Velero's old one
	// is still dropped.
	res = rtRestore(t, r, sn, cl, RestoreOptions{Name: "rv-r3", IncludeNamespaces: []string{"rv-app"},
		NamespaceMappings: map[string]string{"rv-app": "rv-plain"}})
	if res.Phase != layout.PhaseCompleted {
		t.Errorf("phase %s", res.Phase)
	}
	rvWantInit(t, rtGet(t, cl, gvrPod, "rv-plain", "db"), []string{"migrate"}, "")
	if vrs := rvVolumeRestores(t, cl, "rv-r3"); len(vrs) != 0 {
		t.Errorf("%d VolumeRestores without volume data", len(vrs))
	}
}

// rvWantInit checks a pod's init containers by name and, when the first
// is the wait container, its arguments and mounts.
func rvWantInit(t *testing.T, pod *unstructured.Unstructured, names []string, vols string) {
	t.Helper()
	inits, _, _ := unstructured.NestedSlice(pod.Object, "spec", "initContainers")
	var got []string
	for _, c := range inits {
		got = append(got, c.(map[string]any)["name"].(string))
	}
	if !slices.Equal(got, names) {
		t.Fatalf("pod %s: init containers %v, want %v", pod.GetName(), got, names)
	}
	if len(names) == 0 || names[0] != volapi.RestoreWaitContainer {
		return
	}
	c := inits[0].(map[string]any)
	var args []string
	for _, a := range c["args"].([]any) {
		args = append(args, a.(string))
	}
	wantArgs := []string{"cluster", "restore-wait", "--volumes-root", volapi.RestoreWaitRoot, "--marker", pod.GetLabels()[layout.LabelRestoreName], "--volumes", vols}
	if c["image"] != "example.com/cairn:test" || !slices.Equal(args, wantArgs) {
		t.Errorf("pod %s: wait container %v %q, want %q", pod.GetName(), c["image"], args, wantArgs)
	}
	var mounts []string
	for _, m := range c["volumeMounts"].([]any) {
		mm := m.(map[string]any)
		if strings.HasPrefix(mm["name"].(string), "kube-api-access-") {
			continue // added by the ServiceAccount admission plugin
		}
		mounts = append(mounts, mm["name"].(string)+"@"+mm["mountPath"].(string))
	}
	var want []string
	for _, v := range strings.Split(vols, ",") {
		want = append(want, v+"@"+volapi.RestoreWaitRoot+"/"+v)
	}
	if !slices.Equal(mounts, want) {
		t.Errorf("pod %s: mounts %v, want %v", pod.GetName(), mounts, want)
	}
}

// rvWantBound checks that a PV is still bound to its original claim, and
// the claim to it.
func rvWantBound(t *testing.T, cl *kube.Clients, pv, ns, claim string) {
	t.Helper()
	v := rtGet(t, cl, gvrPV, "", pv)
	refNS, _, _ := unstructured.NestedString(v.Object, "spec", "claimRef", "namespace")
	refName, _, _ := unstructured.NestedString(v.Object, "spec", "claimRef", "name")
	vol, _, _ := unstructured.NestedString(rtGet(t, cl, gvrPVC, ns, claim).Object, "spec", "volumeName")
	if refNS != ns || refName != claim || vol != pv {
		t.Errorf("PV %s bound to %s/%s, claim %s/%s to %q", pv, refNS, refName, ns, claim, vol)
	}
}

// rvVolumeRestores lists the VolumeRestores of one restore.
func rvVolumeRestores(t *testing.T, cl *kube.Clients, restore string) []*volapi.VolumeRestore {
	t.Helper()
	l, err := cl.Dynamic.Resource(volapi.VolumeRestoreResource).Namespace("rv-agents").List(context.Background(),
		metav1.ListOptions{LabelSelector: volapi.LabelRestore + "=" + restore})
	if err != nil {
		t.Fatal(err)
	}
	var out []*volapi.VolumeRestore
	for i := range l.Items {
		vr, err := volapi.VolumeRestoreFrom(&l.Items[i])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, vr)
	}
	return out
}
