package podvolumes

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/k8s/backup"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/cairn-backup/cairn/tests/cluster"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestMain starts one control plane for the package's tests.
func TestMain(m *testing.M) {
	os.Exit(cluster.RunShared(m, "k8s/podvolumes"))
}

const password = "podvolumes-hook"

var kdf = repo.Options{KDF: crypto.KDFParams{N: 1 << 10, R: 8, P: 1}}

func newRepo(t *testing.T) (*repo.Repository, string) {
	t.Helper()
	dir := t.TempDir()
	be, err := repo.CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, password, 2, kdf)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, dir
}

func clients(t *testing.T) *kube.Clients {
	t.Helper()
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: cluster.NeedShared(t).Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// The pods of a backup, as k8s/backup hands them over: run, a running pod
// with four annotated volumes; pend, a pending one.
const podsYAML = `
apiVersion: v1
kind: Pod
metadata: {name: run, namespace: shop, uid: uid-run, annotations: {backup.cairn.io/backup-volumes: "ok,badtree,nobody,failed"}}
spec:
  nodeName: node-1
  containers: [{name: c, image: x}]
  volumes: [{name: ok, emptyDir: {}}, {name: badtree, emptyDir: {}}, {name: nobody, emptyDir: {}}, {name: failed, emptyDir: {}}]
status: {phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: pend, namespace: shop, uid: uid-pend, annotations: {backup.cairn.io/backup-volumes: "v"}}
spec:
  nodeName: node-2
  containers: [{name: c, image: x}]
  volumes: [{name: v, emptyDir: {}}]
status: {phase: Pending}
`

type recorder struct{ logs, warns []string }

func (rc *recorder) input(pods []*unstructured.Unstructured) backup.VolumeInput {
	return backup.VolumeInput{Pods: pods, Time: time.Now(),
		Logf:  func(f string, a ...any) { rc.logs = append(rc.logs, fmt.Sprintf(f, a...)) },
		Warnf: func(f string, a ...any) { rc.warns = append(rc.warns, fmt.Sprintf(f, a...)) }}
}

// Without the CRDs, every volume fails with what to do; the backup goes on.
func TestHookWithoutCRDs(t *testing.T) {
	cl := clients(t)
	crd := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := cl.Dynamic.Resource(crd).Get(t.Context(), "volumebackups.cairn.io", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Skip("the CRDs are installed already (run this test alone)")
	}
	r, _ := newRepo(t)
	var rc recorder
	hook := Hook(Options{Dyn: cl.Dynamic, Namespace: "cairn-system", Repo: r, Backup: "b", Timeout: time.Second})
	tree, infos, err := hook(t.Context(), archiver.NewArchiver(r, archiver.ArchiveOptions{}), rc.input(cluster.Objects(t, podsYAML)))
	if err != nil || tree != nil || len(infos) != 5 {
		t.Fatalf("tree %v infos %+v err %v", tree, infos, err)
	}
	for _, v := range infos[1:] {
		if v.Result != layout.VolumeFailed || !strings.Contains(v.Error, "cairn cluster install-crds") {
			t.Errorf("%+v", v)
		}
	}
}

// The test plays the agents: one volume done with a real tree saved by
// another handle on the repository (as an agent process would), one with a
// tree the repository lacks, one nobody takes, one the agent failed. The
// hook stitches only the real one, after loading the other handle's index.
func TestHookStitches(t *testing.T) {
	cl := clients(t)
	if err := volapi.Install(t.Context(), cl.Dynamic, nil); err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("cairn-hook-%d", time.Now().UnixNano()%1e6)
	nsRes := cl.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	if _, err := nsRes.Create(t.Context(), &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsRes.Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	r, dir := newRepo(t)

	// The "agent's" tree: one file.
	be, _ := repo.OpenLocal(dir)
	ar, err := repo.Open(t.Context(), be, password, kdf)
	if err != nil {
		t.Fatal(err)
	}
	ar.LoadIndex(t.Context())
	aa := archiver.NewArchiver(ar, archiver.ArchiveOptions{})
	content, size, err := aa.SaveReader(t.Context(), strings.NewReader("volume data\n"))
	if err != nil {
		t.Fatal(err)
	}
	agentTree, err := aa.SaveTree(t.Context(), &snapshot.Tree{Nodes: []*snapshot.Node{{Name: "f", Type: snapshot.NodeFile, Mode: 0o600, Size: size, Content: content}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ar.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	items := cl.Dynamic.Resource(volapi.VolumeBackupResource).Namespace(ns)
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		statuses := map[string]volapi.VolumeBackupStatus{
			"ok":      {Phase: volapi.PhaseCompleted, Tree: agentTree.String(), Files: 1, Bytes: int64(size), SnapshotID: "abc"},
			"badtree": {Phase: volapi.PhaseCompleted, Tree: repo.Hash([]byte("nothing")).String()},
			"failed":  {Phase: volapi.PhaseFailed, Message: "volume \"failed\" of pod uid-run: volume directory not found"},
		}
		for len(statuses) > 0 && t.Context().Err() == nil {
			l, _ := items.List(t.Context(), metav1.ListOptions{LabelSelector: volapi.LabelBackup + "=b"})
			for i := range l.Items {
				vb, _ := volapi.VolumeBackupFrom(&l.Items[i])
				st, ok := statuses[vb.Spec.Volume]
				if !ok || vb.Labels[volapi.LabelNode] != "node-1" {
					continue
				}
				vb.Status = st
				u, _ := vb.ToUnstructured()
				if _, err := items.UpdateStatus(t.Context(), u, metav1.UpdateOptions{}); err == nil {
					delete(statuses, vb.Spec.Volume)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var rc recorder
	hook := Hook(Options{Dyn: cl.Dynamic, Namespace: ns, Repo: r, Backup: "b", Timeout: 4 * time.Second, Poll: 100 * time.Millisecond})
	a := archiver.NewArchiver(r, archiver.ArchiveOptions{})
	tree, infos, err := hook(t.Context(), a, rc.input(cluster.Objects(t, podsYAML)))
	<-agentDone
	if err != nil || tree == nil {
		t.Fatalf("tree %v err %v", tree, err)
	}
	got := map[string]layout.VolumeInfo{}
	for _, v := range infos {
		got[v.Pod+"/"+v.Volume] = v
	}
	want := map[string]string{
		"run/ok":      layout.VolumeCompleted,
		"run/badtree": "is not in the repository's index",
		"run/nobody":  "no agent took it within the volume timeout (4s): is `cairn cluster agent` running on node node-1",
		"run/failed":  "the agent failed: volume \"failed\" of pod uid-run: volume directory not found",
		"pend/v":      "PodNotRunning",
	}
	for k, w := range want {
		v := got[k]
		if text := v.Result + " " + v.Error + " " + v.Reason; !strings.Contains(text, w) {
			t.Errorf("%s: %+v, want %q", k, v, w)
		}
	}
	if got["run/ok"].Files != 1 || got["run/ok"].Snapshot != "abc" || got["run/ok"].Node != "node-1" || got["pend/v"].Result != layout.VolumeSkipped {
		t.Errorf("infos %+v", infos)
	}
	if !slices.ContainsFunc(rc.warns, func(s string) bool { return strings.Contains(s, "volume v of pod shop/pend not copied") }) {
		t.Errorf("warnings %q", rc.warns)
	}
	// /volumes/shop/run/ok is the agent's tree; nothing else is there.
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	loader := snapshot.NewTreeLoader(r, 8)
	id := *tree
	for _, name := range []string{"shop", "run"} {
		tr, err := loader.Tree(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.Nodes) != 1 || tr.Nodes[0].Name != name {
			t.Fatalf("tree at %s: %+v", name, tr.Nodes)
		}
		id = *tr.Nodes[0].Subtree
	}
	tr, err := loader.Tree(t.Context(), id)
	if err != nil || len(tr.Nodes) != 1 || tr.Nodes[0].Name != "ok" || *tr.Nodes[0].Subtree != agentTree {
		t.Fatalf("pod tree %+v %v", tr, err)
	}
}
