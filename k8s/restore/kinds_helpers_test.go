package restore

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/backup"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/cluster"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// ktApplied is one object as applied: its resource and the live object.
type ktApplied struct {
	gvr schema.GroupVersionResource
	obj *unstructured.Unstructured
}

func (a ktApplied) key() string {
	return grString(a.gvr.GroupResource()) + " " + path.Join(a.obj.GetNamespace(), a.obj.GetName())
}

// ktApply applies the documents of a YAML stream server-side (namespaced
// ones in ns) and returns them as the server has them.
func ktApply(t *testing.T, cl *kube.Clients, ns, docs string) []ktApplied {
	t.Helper()
	ctx := context.Background()
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cl.Discovery))
	var out []ktApplied
	for _, o := range cluster.Objects(t, docs) {
		js, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		gvk := o.GroupVersionKind()
		var gvr schema.GroupVersionResource
		var namespaced bool
		deadline := time.Now().Add(30 * time.Second)
		for {
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err == nil {
				gvr, namespaced = m.Resource, m.Scope.Name() == "namespace"
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("map %v: %v", gvk, err)
			}
			mapper.Reset() // a CRD applied just before
			time.Sleep(200 * time.Millisecond)
		}
		var ri dynamic.ResourceInterface = cl.Dynamic.Resource(gvr)
		if namespaced {
			ri = cl.Dynamic.Resource(gvr).Namespace(ns)
		}
		live, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, js, metav1.PatchOptions{FieldManager: "kt-test", Force: new(true)})
		if err != nil {
			t.Fatalf("apply %v %s: %v", gvk, o.GetName(), err)
		}
		out = append(out, ktApplied{gvr: gvr, obj: live})
	}
	return out
}

// ktSetup applies the application and waits until the controllers have
// made what they make (ReplicaSet, pods, claims of the StatefulSet), so
// that the backup holds a settled namespace.
func ktSetup(t *testing.T, cl *kube.Clients) []ktApplied {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() {
		bg := context.Background()
		for _, ns := range []string{ktNS, ktNS + "-copy"} {
			_ = cl.Dynamic.Resource(gvrNamespace).Delete(bg, ns, metav1.DeleteOptions{})
		}
		for _, o := range ktClusterObjects {
			_ = rtResource(cl, o).Delete(bg, o.name, metav1.DeleteOptions{})
		}
	})
	applied := ktApply(t, cl, "", ktClusterYAML)
	ktWaitCRD(t, cl, "cacheclusters.kt.example.com")
	applied = append(applied, ktApply(t, cl, ktNS, ktManifests(t))...)
	pods := func(selector string, n int) func() bool {
		return func() bool {
			l, err := cl.Dynamic.Resource(gvrPod).Namespace(ktNS).List(ctx, metav1.ListOptions{LabelSelector: selector})
			return err == nil && len(l.Items) == n
		}
	}
	rtWaitFor(t, "the storefront pods", 60*time.Second, pods("app.kubernetes.io/name=storefront", 2))
	rtWaitFor(t, "the sessions pod", 60*time.Second, pods("app.kubernetes.io/name=sessions", 1))
	rtWaitFor(t, "the migration pod", 60*time.Second, pods("batch.kubernetes.io/job-name=db-migrate", 1))
	rtWaitFor(t, "the claim of the sessions pod", 60*time.Second, func() bool {
		return rtGet(t, cl, gvrPVC, ktNS, "data-sessions-0") != nil
	})
	// A run of the CronJob, as `kubectl create job --from=cronjob/…`
	// makes one: owned by the CronJob, with a pod of its own.
	cj := rtGet(t, cl, schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, ktNS, "nightly-report")
	run := ktApply(t, cl, ktNS, fmt.Sprintf(`
apiVersion: batch/v1
kind: Job
metadata:
  name: nightly-report-manual-1
  ownerReferences:
  - {apiVersion: batch/v1, kind: CronJob, name: nightly-report, uid: %s, controller: true}
spec:
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: report
        image: registry.example.com/storefront/report:2024.06.1
        args: ["--since=24h"]
`, cj.GetUID()))
	if metav1.GetControllerOfNoCopy(run[0].obj) == nil {
		t.Fatal("the CronJob's run has no controller")
	}
	rtWaitFor(t, "the pod of the CronJob's run", 60*time.Second, pods("batch.kubernetes.io/job-name=nightly-report-manual-1", 1))
	return applied
}

// ktNormalize is rtNormalize plus what a restore may change on the kinds
// of this test: a Job's generated selector.
func ktNormalize(o *unstructured.Unstructured, gr schema.GroupResource) *unstructured.Unstructured {
	o = o.DeepCopy()
	if gr == grJob {
		cleanJob(o)
		unstructured.RemoveNestedField(o.Object, "metadata", "labels", "controller-uid")
		unstructured.RemoveNestedField(o.Object, "metadata", "labels", "batch.kubernetes.io/controller-uid")
	}
	return &unstructured.Unstructured{Object: rtNormalize(o, gr)}
}

// ktBackup backs up with spec and checks that it completed.
func ktBackup(t *testing.T, cl *kube.Clients, r *repo.Repository, name string, spec layout.BackupSpec) *snapshot.Snapshot {
	t.Helper()
	res, err := backup.Backup(context.Background(), cl, r, backup.BackupOptions{Name: name, Spec: spec})
	if err != nil {
		t.Fatalf("backup %s: %v", name, err)
	}
	if res.Info.Phase != layout.PhaseCompleted {
		t.Fatalf("backup %s: %s: %v", name, res.Info.Phase, res.Info.Errors)
	}
	return res.Snapshot
}

// ktBacked is what a backup holds: objects by rtItems key.
type ktBacked map[string]*unstructured.Unstructured

// ktRead reads every manifest of a backup.
func ktRead(t *testing.T, r *repo.Repository, sn *snapshot.Snapshot) ktBacked {
	t.Helper()
	ctx := context.Background()
	src, err := OpenBackupSource(ctx, r, sn)
	if err != nil {
		t.Fatal(err)
	}
	out := ktBacked{}
	for _, m := range src.Manifests {
		o, err := src.Object(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		out[grString(m.GroupResource())+" "+path.Join(m.Namespace, m.Name)] = o
	}
	return out
}

// ktRestorable reports whether a backed-up object is one a restore must
// bring back (and list): pods of Jobs and Jobs of CronJobs are left to
// their restored owner.
func ktRestorable(key string, o *unstructured.Unstructured) bool {
	c := metav1.GetControllerOfNoCopy(o)
	switch {
	case c == nil:
		return true
	case strings.HasPrefix(key, "pods "):
		return c.Kind != "Job"
	case strings.HasPrefix(key, "jobs.batch "):
		return c.Kind != "CronJob"
	}
	return true
}

// ktSummary logs a restore's counts and every item that failed.
func ktSummary(t *testing.T, res *RestoreResult) {
	t.Helper()
	byAction := map[string]int{}
	for _, c := range res.Counts {
		for a, n := range c {
			byAction[a] += n
		}
	}
	t.Logf("restore %s: %s, %s", res.Name, res.Phase, ktKeys(byAction))
	for _, e := range res.Errors {
		t.Logf("  error: %s", e)
	}
}

// ktMadeByCluster reports objects that the cluster makes by itself in a
// new namespace and that a restore may therefore find existing.
func ktMadeByCluster(key string) bool {
	return strings.HasPrefix(key, "configmaps ") && strings.HasSuffix(key, "/kube-root-ca.crt") ||
		strings.HasPrefix(key, "serviceaccounts ") && strings.HasSuffix(key, "/default")
}

// ktWantRestored checks that every object of the backup in namespace ns
// (and every cluster-scoped one, with ns "") was created, or found made by
// the cluster.
func ktWantRestored(t *testing.T, res *RestoreResult, backed ktBacked, ns string, nsMap map[string]string) {
	t.Helper()
	items := rtItems(res)
	for k, o := range backed {
		if o.GetNamespace() != ns || !ktRestorable(k, o) {
			continue
		}
		want := o.DeepCopy()
		gr := splitGR(strings.Fields(k)[0])
		mapNamespace(want, gr, nsMap)
		key := grString(gr) + " " + path.Join(want.GetNamespace(), want.GetName())
		it, ok := items[key]
		switch {
		case !ok:
			t.Errorf("%s: in the backup, not restored", key)
		case it.Action != ActionCreated && !(ktMadeByCluster(key) && (it.Action == ActionSkippedExists || it.Action == ActionUpdated)):
			t.Errorf("%s: %s (%s)", key, it.Action, it.Reason)
		}
	}
}

// ktCompare checks that the applied objects are live in the cluster (in
// the namespace they are mapped to), restored by cairn and equal to their
// backed-up state.
func ktCompare(t *testing.T, cl *kube.Clients, applied []ktApplied, backed ktBacked, nsMap map[string]string) {
	t.Helper()
	for _, a := range applied {
		gr := a.gvr.GroupResource()
		want := backed[a.key()]
		if want == nil {
			t.Errorf("%s: not in the backup", a.key())
			continue
		}
		want = want.DeepCopy()
		mapNamespace(want, gr, nsMap)
		got := rtGet(t, cl, a.gvr, want.GetNamespace(), want.GetName())
		if got == nil {
			t.Errorf("%s: not restored", a.key())
			continue
		}
		if got.GetLabels()[layout.LabelRestoreName] == "" {
			t.Errorf("%s: no %s label: not restored by cairn", a.key(), layout.LabelRestoreName)
		}
		rtEqual(t, a.key(), gr, ktNormalize(want, gr), ktNormalize(got, gr))
	}
}

// ktCheckControllers checks that the restored workloads are whole again:
// the controllers adopted the restored objects instead of making a second
// set, and no restored pod is left without an owner.
func ktCheckControllers(t *testing.T, cl *kube.Clients, ns string) {
	t.Helper()
	ctx := context.Background()
	var count map[string]int
	var names []string
	want := map[string]int{"ReplicaSet": 2, "StatefulSet": 1, "Job": 1}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pods, err := cl.Dynamic.Resource(gvrPod).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		count, names = map[string]int{}, nil
		for _, p := range pods.Items {
			owner := "none"
			if c := metav1.GetControllerOfNoCopy(&p); c != nil {
				owner = c.Kind
			}
			count[owner]++
			names = append(names, p.GetName())
		}
		if maps.Equal(count, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !maps.Equal(count, want) {
		t.Errorf("pods in %s by controller %v, want %v: %v", ns, count, want, names)
	}
	rs, err := cl.Dynamic.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(rs.Items) != 1 {
		t.Errorf("replica sets in %s: %v, want 1 (%v)", ns, rs, err)
	}
}

// ktWantToken waits until the restored token Secret holds a token the
// cluster issued for the restored ServiceAccount (not the backed-up one).
func ktWantToken(t *testing.T, cl *kube.Clients, ns string, backed ktBacked) {
	t.Helper()
	old, _, _ := unstructured.NestedString(backed["secrets "+ktNS+"/build-robot-secret"].Object, "data", "token")
	if old == "" {
		t.Fatal("the backed-up token secret holds no token")
	}
	rtWaitFor(t, "a token for build-robot in "+ns, 30*time.Second, func() bool {
		sec := rtGet(t, cl, gvrSecret, ns, "build-robot-secret")
		sa := rtGet(t, cl, schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, ns, "build-robot")
		if sec == nil || sa == nil {
			return false
		}
		tok, _, _ := unstructured.NestedString(sec.Object, "data", "token")
		return tok != "" && tok != old && sec.GetAnnotations()["kubernetes.io/service-account.uid"] == string(sa.GetUID())
	})
}

// ktStartCluster starts another control plane for the test.
func ktStartCluster(t *testing.T) *kube.Clients {
	t.Helper()
	cluster.NeedShared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: c.Kubeconfig, QPS: 1000, Burst: 2000})
	if err != nil {
		t.Fatal(err)
	}
	cl.Config.WarningHandler = rest.NoWarnings{}
	if cl.Dynamic, err = dynamic.NewForConfig(cl.Config); err != nil {
		t.Fatal(err)
	}
	// A cluster in use has settled: its controllers made their objects.
	for _, ns := range []string{"default", "kube-system", "kube-public"} {
		rtWaitFor(t, "the root CA config map in "+ns, 30*time.Second, func() bool {
			return rtGet(t, cl, gvrConfigMap, ns, "kube-root-ca.crt") != nil
		})
	}
	return cl
}

// ktInventory lists every object the cluster holds, by rtItems key.
func ktInventory(t *testing.T, cl *kube.Clients) map[string]bool {
	t.Helper()
	ctx := context.Background()
	d, err := kube.Discover(ctx, cl.Discovery)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, r := range d.Resources {
		if backup.SkipReason(r) != "" {
			continue
		}
		l, err := cl.Dynamic.Resource(r.GVR()).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list %s: %v", r.Dir(), err)
		}
		for _, o := range l.Items {
			out[r.Dir()+" "+path.Join(o.GetNamespace(), o.GetName())] = true
		}
	}
	return out
}

// ktVersion is the version the cluster serves a "<resource>.<group>" at.
func ktVersion(t *testing.T, cl *kube.Clients, dir string) string {
	t.Helper()
	d, err := kube.Discover(context.Background(), cl.Discovery)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := d.Find(dir)
	if !ok {
		t.Fatalf("%s not served", dir)
	}
	return r.Version
}

// ktWaitCRD waits until a CRD is established and served by discovery.
func ktWaitCRD(t *testing.T, cl *kube.Clients, name string) {
	t.Helper()
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	rtWaitFor(t, "CRD "+name+" established", 30*time.Second, func() bool {
		crd, err := cl.Dynamic.Resource(gvr).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
				return true
			}
		}
		return false
	})
	rtWaitFor(t, "CRD "+name+" discovered", 30*time.Second, func() bool {
		d, err := kube.Discover(context.Background(), cl.Discovery)
		if err != nil {
			return false
		}
		_, ok := d.Find(name)
		return ok
	})
}

func ktKeys(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
