package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/tests/cluster"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// TestMain starts one control plane for the package's tests.
func TestMain(m *testing.M) {
	os.Exit(cluster.RunShared(m, "k8s/agent"))
}

func newRepo(t *testing.T) *repo.Repository {
	r, _ := newRepoDir(t)
	return r
}

func newRepoDir(t *testing.T) (*repo.Repository, string) {
	t.Helper()
	dir := t.TempDir()
	be, err := repo.CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(t.Context(), be, "agent-test", 2, repo.Options{KDF: crypto.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r, dir
}

type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logs) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// Two agents of one node (a rolling update overlaps them) race for the
// same items: the resourceVersion-guarded claim gives each item to
// exactly one, which copies it once. An item for another repository or
// for a pod without a directory here fails with a message saying so.
func TestAgentsShareItemsExactlyOnce(t *testing.T) {
	c := cluster.NeedShared(t)
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: c.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := volapi.Install(ctx, cl.Dynamic, nil); err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("cairn-agent-%d", time.Now().UnixNano()%1e6)
	nsRes := cl.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	if _, err := nsRes.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsRes.Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	r := newRepo(t)
	root := t.TempDir()
	items := cl.Dynamic.Resource(volapi.VolumeBackupResource).Namespace(ns)
	const n = 8
	for i := range n {
		uid := fmt.Sprintf("uid-%d", i)
		dir := filepath.Join(root, "pods", uid, "volumes", "kubernetes.io~empty-dir", "v")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "f"), []byte(strings.Repeat(uid, 1000)), 0o644)
		create(t, items, ns, uid, r.Config().ID)
	}
	create(t, items, ns, "uid-missing", r.Config().ID)
	create(t, items, ns, "uid-0", "other-repository-id") // same pod, other backup name below
	var l logs
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 2 {
		ag, err := New(Config{Dyn: cl.Dynamic, Namespace: ns, Node: "node-x", KubeletRoot: root, Repo: r,
			ID: fmt.Sprintf("node-x/agent-%d/1", i), Concurrent: 2, Heartbeat: 200 * time.Millisecond, Logf: l.logf})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { ag.Run(runCtx) })
	}
	deadline := time.Now().Add(time.Minute)
	var done []*volapi.VolumeBackup
	for time.Now().Before(deadline) {
		done = nil
		lst, err := items.List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range lst.Items {
			vb, _ := volapi.VolumeBackupFrom(&lst.Items[i])
			if vb.Status.Phase.Done() {
				done = append(done, vb)
			}
		}
		if len(done) == n+2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if len(done) != n+2 {
		t.Fatalf("%d of %d items done", len(done), n+2)
	}
	for _, vb := range done {
		st, uid := vb.Status, vb.Spec.Pod.UID
		switch {
		case vb.Spec.Repository.ID == "other-repository-id":
			if st.Phase != volapi.PhaseFailed || !strings.Contains(st.Message, "run an agent for that repository") {
				t.Errorf("other repository: %+v", st)
			}
		case uid == "uid-missing":
			if st.Phase != volapi.PhaseFailed || !strings.Contains(st.Message, "pod directory not found") {
				t.Errorf("missing pod: %+v", st)
			}
		default:
			if st.Phase != volapi.PhaseCompleted || st.Attempts != 1 || st.Files != 1 || st.Bytes != int64(len(uid)*1000) || st.Tree == "" {
				t.Errorf("%s: %+v", uid, st)
			}
		}
		if c := l.count(vb.Namespace + "/" + vb.Name + ": copying"); c != 1 {
			t.Errorf("%s copied %d times", vb.Name, c)
		}
	}
}

func create(t *testing.T, items interface {
	Create(context.Context, *unstructured.Unstructured, metav1.CreateOptions, ...string) (*unstructured.Unstructured, error)
}, ns, uid, repoID string) {
	t.Helper()
	name := "b"
	if repoID == "other-repository-id" {
		name = "b-other"
	}
	vb := volapi.NewVolumeBackup(ns, volapi.VolumeBackupSpec{Node: "node-x", Pod: volapi.PodRef{Namespace: "app", Name: "p-" + uid, UID: uid},
		Volume: "v", Repository: volapi.RepositoryRef{ID: repoID}, BackupName: name,
		Parent: volapi.ParentHint{Namespace: "app", Workload: "Pod/p-" + uid, Volume: "v"}})
	u, err := vb.ToUnstructured()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := items.Create(t.Context(), u, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// deploy/agent/agent.yaml is valid for the API server (strict field
// validation; the DaemonSet by a server-side dry run), and its RBAC is
// all an agent needs: one impersonating its ServiceAccount copies an item.
func TestDeployManifest(t *testing.T) {
	c := cluster.NeedShared(t)
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: c.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := volapi.Install(ctx, cl.Dynamic, nil); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../deploy/agent/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{"Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings", "DaemonSet": "daemonsets",
		"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings"}
	var ns, sa string
	for _, o := range cluster.Objects(t, string(raw)) {
		gv, _ := schema.ParseGroupVersion(o.GetAPIVersion())
		res := cl.Dynamic.Resource(gv.WithResource(kinds[o.GetKind()]))
		opts := metav1.CreateOptions{FieldValidation: "Strict"}
		switch o.GetKind() {
		case "Namespace":
			ns = o.GetName()
			if _, err := res.Create(ctx, o, opts); err != nil && !strings.Contains(err.Error(), "already exists") {
				t.Fatal(err)
			}
			continue
		case "ServiceAccount":
			sa = o.GetName()
		case "DaemonSet":
			opts.DryRun = []string{metav1.DryRunAll}
		}
		if _, err := res.Namespace(o.GetNamespace()).Create(ctx, o, opts); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}

	cfg := rest.CopyConfig(cl.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + sa}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := newRepo(t)
	root := t.TempDir()
	uid := fmt.Sprintf("rbac-%d", time.Now().UnixNano())
	dir := filepath.Join(root, "pods", uid, "volumes", "kubernetes.io~empty-dir", "v")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644)
	items := cl.Dynamic.Resource(volapi.VolumeBackupResource).Namespace(ns)
	create(t, items, ns, uid, r.Config().ID)
	var l logs
	ag, err := New(Config{Dyn: dyn, Namespace: ns, Node: "node-x", KubeletRoot: root, Repo: r,
		ID: "node-x/rbac/1", Heartbeat: 200 * time.Millisecond, Logf: l.logf})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go ag.Run(runCtx)
	name := volapi.ItemName("b", uid, "v")
	deadline := time.Now().Add(30 * time.Second)
	for {
		u, err := items.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		vb, _ := volapi.VolumeBackupFrom(u)
		if vb.Status.Phase == volapi.PhaseCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not copied as the ServiceAccount: %+v\n%s", vb.Status, strings.Join(l.lines, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// And it may not touch what it does not need.
	if err := dyn.Resource(volapi.VolumeBackupResource).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{}); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("the agent may delete items: %v", err)
	}
	deployRestoreRBAC(t, cl.Dynamic, ns, r.Config().ID, &l)
}

// deployRestoreRBAC: the ServiceAccount's agent sees a pod on its node,
// takes the pod's unassigned VolumeRestore (an update) and reports on it
// (here: Failed, its source being made up).
func deployRestoreRBAC(t *testing.T, admin dynamic.Interface, ns, repoID string, l *logs) {
	t.Helper()
	ctx := t.Context()
	nodes := admin.Resource(schema.GroupVersionResource{Version: "v1", Resource: "nodes"})
	if _, err := nodes.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Node", "metadata": map[string]any{"name": "node-x"}}}, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	pods := admin.Resource(gvrPod).Namespace(ns)
	pod, err := pods.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "restored", "labels": map[string]any{volapi.LabelRestore: "r"}},
		"spec": map[string]any{"nodeName": "node-x", "automountServiceAccountToken": false,
			"containers": []any{map[string]any{"name": "c", "image": "example/app:1"}},
			"volumes":    []any{map[string]any{"name": "v", "emptyDir": map[string]any{}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vr := volapi.NewVolumeRestore(ns, volapi.VolumeRestoreSpec{
		Pod: volapi.PodRef{Namespace: ns, Name: "restored", UID: string(pod.GetUID())}, Volume: "v",
		Repository: volapi.RepositoryRef{ID: repoID}, RestoreName: "r", DoneMarker: volapi.DoneMarker("r"),
		Source: volapi.RestoreSource{SnapshotID: strings.Repeat("1", 64), Tree: strings.Repeat("2", 64), Path: "/volumes/a/b/c"},
	})
	u, err := vr.ToUnstructured()
	if err != nil {
		t.Fatal(err)
	}
	items := admin.Resource(volapi.VolumeRestoreResource).Namespace(ns)
	if _, err := items.Create(ctx, u, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		u, err := items.Get(ctx, vr.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := volapi.VolumeRestoreFrom(u)
		if got.Status.Phase == volapi.PhaseFailed && got.Spec.Node == "node-x" && strings.Contains(got.Status.Message, "snapshot 11111111") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("restore item not taken as the ServiceAccount: node %q, %+v\n%s", got.Spec.Node, got.Status, strings.Join(l.lines, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A prune's exclusive lock is waited out, the item's heartbeat going on;
// the copy runs once the lock is gone.
func TestAgentWaitsForExclusiveLock(t *testing.T) {
	c := cluster.NeedShared(t)
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: c.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := volapi.Install(ctx, cl.Dynamic, nil); err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("cairn-lock-%d", time.Now().UnixNano()%1e6)
	nsRes := cl.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	if _, err := nsRes.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r, dir := newRepoDir(t)
	be, _ := repo.OpenLocal(dir)
	pruner, err := repo.Open(ctx, be, "agent-test", repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	excl, err := pruner.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	kdir := filepath.Join(root, "pods", "uid-l", "volumes", "kubernetes.io~empty-dir", "v")
	os.MkdirAll(kdir, 0o755)
	os.WriteFile(filepath.Join(kdir, "f"), []byte("x"), 0o644)
	items := cl.Dynamic.Resource(volapi.VolumeBackupResource).Namespace(ns)
	create(t, items, ns, "uid-l", r.Config().ID)
	var l logs
	ag, err := New(Config{Dyn: cl.Dynamic, Namespace: ns, Node: "node-x", KubeletRoot: root, Repo: r,
		ID: "node-x/lock/1", Heartbeat: 200 * time.Millisecond, Logf: l.logf})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go ag.Run(runCtx)
	name := volapi.ItemName("b", "uid-l", "v")
	status := func() volapi.VolumeBackupStatus {
		u, err := items.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		vb, _ := volapi.VolumeBackupFrom(u)
		return vb.Status
	}
	time.Sleep(2 * time.Second)
	st := status()
	if st.Phase != volapi.PhaseInProgress || st.Heartbeat == nil || time.Since(st.Heartbeat.Time) > 2*time.Second || l.count("waiting for the repository") != 1 {
		t.Fatalf("while locked: %+v\n%s", st, strings.Join(l.lines, "\n"))
	}
	if err := excl.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for st = status(); st.Phase != volapi.PhaseCompleted; st = status() {
		if time.Now().After(deadline) {
			t.Fatalf("after unlock: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
