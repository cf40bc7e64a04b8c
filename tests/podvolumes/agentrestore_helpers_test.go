package podvolumes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/volapi"
	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// restoreInto runs cairn cluster restore of backup into namespace to
// (mapped from the app's namespace) as restore name.
func (e *env) restoreInto(backup, name, to string) {
	e.t.Helper()
	e.t.Cleanup(func() { e.cl.Dynamic.Resource(gvrNS).Delete(e.t.Context(), to, metav1.DeleteOptions{}) })
	e.cairn(0, "cluster", "restore", backup, "--kubeconfig", e.c.Kubeconfig, "--restore-name", name,
		"--include-namespaces", e.appNS, "--namespace-mappings", e.appNS+":"+to,
		"--agent-namespace", e.agentNS, "--restore-helper-image", "registry.example/cairn:test")
}

// schedule plays the scheduler and the kubelet for a restored pod: it
// binds the pod to node, sets it Running and returns its UID.
func (e *env) schedule(ns, pod, node string) string {
	e.t.Helper()
	b := obj("v1", "Binding", pod, ns, map[string]any{"target": map[string]any{"apiVersion": "v1", "kind": "Node", "name": node}})
	if _, err := e.cl.Dynamic.Resource(gvrPod).Namespace(ns).Create(e.t.Context(), b, metav1.CreateOptions{}, "binding"); err != nil {
		e.t.Fatalf("bind pod %s/%s to %s: %v", ns, pod, node, err)
	}
	u, err := e.cl.Dynamic.Resource(gvrPod).Namespace(ns).Get(e.t.Context(), pod, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	unstructured.SetNestedField(u.Object, "Running", "status", "phase")
	if _, err := e.cl.Dynamic.Resource(gvrPod).Namespace(ns).UpdateStatus(e.t.Context(), u, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return string(u.GetUID())
}

// provision plays the provisioner for a restored claim: a new CSI PV,
// pre-bound to it; it waits until the claim is bound and returns the PV.
func (e *env) provision(ns, claim string) string {
	e.t.Helper()
	pv := "pv-new-" + claim + "-" + e.sfx
	e.create(gvrPV, "", obj("v1", "PersistentVolume", pv, "", map[string]any{"spec": map[string]any{
		"capacity": map[string]any{"storage": "1Gi"}, "accessModes": []any{"ReadWriteOnce", "ReadWriteMany"}, "storageClassName": "manual",
		"persistentVolumeReclaimPolicy": "Delete",
		"csi":                           map[string]any{"driver": "csi.test.cairn.io", "volumeHandle": pv},
		"claimRef":                      map[string]any{"namespace": ns, "name": claim},
	}}))
	e.t.Cleanup(func() { e.cl.Dynamic.Resource(gvrPV).Delete(e.t.Context(), pv, metav1.DeleteOptions{}) })
	e.waitFor(90*time.Second, "claim "+ns+"/"+claim+" bound", func() bool {
		u, err := e.cl.Dynamic.Resource(gvrPVC).Namespace(ns).Get(e.t.Context(), claim, metav1.GetOptions{})
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		return err == nil && phase == "Bound"
	})
	return pv
}

// restores returns the VolumeRestores of a restore by pod/volume.
func (e *env) restores(restore string) map[string]*volapi.VolumeRestore {
	e.t.Helper()
	l, err := e.cl.Dynamic.Resource(volapi.VolumeRestoreResource).Namespace(e.agentNS).List(e.t.Context(),
		metav1.ListOptions{LabelSelector: volapi.LabelRestore + "=" + restore})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]*volapi.VolumeRestore{}
	for i := range l.Items {
		vr, err := volapi.VolumeRestoreFrom(&l.Items[i])
		if err != nil {
			e.t.Fatal(err)
		}
		out[vr.Spec.Pod.Name+"/"+vr.Spec.Volume] = vr
	}
	return out
}

// waitRestored waits until every item of the restore is final.
func (e *env) waitRestored(restore string, n int) map[string]*volapi.VolumeRestore {
	e.t.Helper()
	var items map[string]*volapi.VolumeRestore
	e.waitFor(3*time.Minute, "the VolumeRestores of "+restore+" done", func() bool {
		items = e.restores(restore)
		for _, vr := range items {
			if !vr.Status.Phase.Done() {
				return false
			}
		}
		return len(items) == n
	})
	return items
}

// waitRoot makes a directory that holds each volume, as the init
// container mounts them, as a symlink to its directory.
func waitRoot(t *testing.T, vols map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, dir := range vols {
		if err := os.Symlink(dir, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// owners gives some entries of a generated tree other owners and a file an
// extended attribute (when the file system has them), so that the restore
// is seen to put them back.
func owners(t *testing.T, dir string) (xattrFile string) {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir || d.Type()&os.ModeSymlink != 0 {
			return err
		}
		if n%5 == 0 {
			if err := os.Lchown(p, 1000+n, 2000+n); err != nil {
				t.Fatal(err)
			}
		}
		if xattrFile == "" && d.Type().IsRegular() {
			if unix.Lsetxattr(p, "user.cairn-test", []byte("restored"), 0) == nil {
				xattrFile = strings.TrimPrefix(p, dir+"/")
			}
		}
		n++
		return nil
	})
	return xattrFile
}

// isMarker skips the done markers of restores when trees are compared.
func isMarker(rel string) bool { return strings.HasPrefix(rel, ".cairn-restore-") }
