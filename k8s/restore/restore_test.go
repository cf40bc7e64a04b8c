package restore

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	gvrConfigMap  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrSecret     = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	gvrService    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	gvrNamespace  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrPV         = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumes"}
	gvrPVC        = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
	gvrDeployment = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	gvrSC         = schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: "storageclasses"}
	gvrCRD        = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	gvrWidget     = schema.GroupVersionResource{Group: "rt.example.com", Version: "v1", Resource: "rtwidgets"}
	gvrRoleBind   = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}
)

// rtWaitFor polls cond for up to limit.
func rtWaitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rtRestore runs a restore and fails the test on an error.
func rtRestore(t *testing.T, r *repo.Repository, sn *snapshot.Snapshot, cl *kube.Clients, opts RestoreOptions) *RestoreResult {
	t.Helper()
	res, err := Restore(context.Background(), r, sn, cl, opts)
	rtLogResult(t, res)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	return res
}

func rtWantAction(t *testing.T, items map[string]ItemResult, key, action string) {
	t.Helper()
	it, ok := items[key]
	if !ok {
		t.Errorf("%s: not in the result", key)
		return
	}
	if it.Action != action {
		t.Errorf("%s: %s (%s), want %s", key, it.Action, it.Reason, action)
	}
}

// TestRestoreApp backs up a namespace with a bit of everything and
// restores it in every way: over the live objects, dry, mapped, filtered
// and finally after deleting it all.
func TestRestoreApp(t *testing.T) {
	cl := rtConnect(t)
	ctx := context.Background()
	rtApply(t, cl, rtAppYAML)
	rtCleanup(t, cl, "rt-app", "rt-copy", "rt-sel", "rt-res", "rt-nocl")
	t.Cleanup(func() {
		for _, o := range []rtRef{{gvr: gvrPV, name: "rt-pv"}, {gvr: gvrSC, name: "rt-fast"}, {gvr: gvrCRD, name: "rtwidgets.rt.example.com"}} {
			_ = rtResource(cl, o).Delete(context.Background(), o.name, metav1.DeleteOptions{})
		}
	})
	rtWaitFor(t, "the claim to bind and the deployment's pod", 30*time.Second, func() bool {
		pvc := rtGet(t, cl, gvrPVC, "rt-app", "data")
		phase, _, _ := unstructured.NestedString(pvc.Object, "status", "phase")
		pods, err := cl.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "pods"}).Namespace("rt-app").List(ctx, metav1.ListOptions{})
		return phase == "Bound" && err == nil && len(pods.Items) == 2
	})
	files := rtLiveFiles(t, cl, []string{"rt-app"}, map[schema.GroupResource][]string{
		grStorageClass: {"rt-fast"}, grPV: {"rt-pv"}, grCRD: {"rtwidgets.rt.example.com"},
	})
	r := rtRepo(t)
	sn := rtWriteBackup(t, r, "rt-app", files)
	src, err := OpenBackupSource(ctx, r, sn)
	if err != nil {
		t.Fatal(err)
	}
	if src.Info == nil || src.Info.Name != "rt-app" || len(src.Manifests) != len(files)-1 {
		t.Fatalf("backup source: info %+v, %d manifests for %d files", src.Info, len(src.Manifests), len(files))
	}
	backedUp := func(gr schema.GroupResource, ns, name string) *unstructured.Unstructured {
		t.Helper()
		m, ok := ParseManifestPath(layout.ManifestPath(ns, gr.Resource, gr.Group, name))
		if !ok {
			t.Fatalf("bad path for %s %s", gr, name)
		}
		o, err := decodeManifest(m, files[m.Path])
		if err != nil {
			t.Fatal(err)
		}
		return o
	}

	t.Run("existing-none", func(t *testing.T) {
		cm := rtGet(t, cl, gvrConfigMap, "rt-app", "settings")
		cm.Object["data"] = map[string]any{"mode": "changed"}
		if _, err := cl.Dynamic.Resource(gvrConfigMap).Namespace("rt-app").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		res := rtRestore(t, r, sn, cl, RestoreOptions{IncludeNamespaces: []string{"rt-app"}})
		if res.Phase != layout.PhaseCompleted || res.Total(ActionCreated) != 0 || res.Total(ActionSkippedExists) < 20 {
			t.Errorf("phase %s, %d created, %d skipped-exists: want Completed, 0, all", res.Phase, res.Total(ActionCreated), res.Total(ActionSkippedExists))
		}
		rtWantAction(t, rtItems(res), "configmaps rt-app/settings", ActionSkippedExists)
		if got, _, _ := unstructured.NestedString(rtGet(t, cl, gvrConfigMap, "rt-app", "settings").Object, "data", "mode"); got != "changed" {
			t.Errorf("policy none changed the live object: mode=%q", got)
		}
		if !strings.HasPrefix(res.Name, "rt-app-") || res.Backup != "rt-app" || res.SnapshotID != sn.ID.String() {
			t.Errorf("result names: %q %q %q", res.Name, res.Backup, res.SnapshotID)
		}
	})

	t.Run("existing-update", func(t *testing.T) {
		ipBefore, _, _ := unstructured.NestedString(rtGet(t, cl, gvrService, "rt-app", "web").Object, "spec", "clusterIP")
		res := rtRestore(t, r, sn, cl, RestoreOptions{IncludeNamespaces: []string{"rt-app"}, ExistingResourcePolicy: ExistingUpdate, Name: "upd"})
		if res.Phase != layout.PhaseCompleted {
			t.Errorf("phase %s", res.Phase)
		}
		items := rtItems(res)
		rtWantAction(t, items, "configmaps rt-app/settings", ActionUpdated)
		rtWantAction(t, items, "services rt-app/web", ActionUpdated)
		rtWantAction(t, items, "configmaps rt-app/kube-root-ca.crt", ActionSkippedExists)
		rtWantAction(t, items, "serviceaccounts rt-app/default", ActionSkippedExists)
		live := rtGet(t, cl, gvrConfigMap, "rt-app", "settings")
		if got, _, _ := unstructured.NestedString(live.Object, "data", "mode"); got != "production" {
			t.Errorf("policy update left mode=%q", got)
		}
		if live.GetLabels()[layout.LabelRestoreName] != "upd" || live.GetLabels()[layout.LabelBackupName] != "rt-app" {
			t.Errorf("labels after update: %v", live.GetLabels())
		}
		ipAfter, _, _ := unstructured.NestedString(rtGet(t, cl, gvrService, "rt-app", "web").Object, "spec", "clusterIP")
		if ipAfter != ipBefore {
			t.Errorf("update changed the cluster IP %s -> %s", ipBefore, ipAfter)
		}
	})

	t.Run("dry-run", func(t *testing.T) {
		if err := cl.Dynamic.Resource(gvrConfigMap).Namespace("rt-app").Delete(ctx, "other", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		res := rtRestore(t, r, sn, cl, RestoreOptions{IncludeNamespaces: []string{"rt-app"}, DryRun: true})
		items := rtItems(res)
		rtWantAction(t, items, "configmaps rt-app/other", ActionCreated)
		if it := items["configmaps rt-app/other"]; it.Reason != "" {
			t.Errorf("an object in an existing namespace should be validated by the server: %q", it.Reason)
		}
		if rtGet(t, cl, gvrConfigMap, "rt-app", "other") != nil {
			t.Error("dry run created configmaps/other")
		}
		// Into a new namespace: nothing is created, the namespace neither.
		res = rtRestore(t, r, sn, cl, RestoreOptions{IncludeNamespaces: []string{"rt-app"}, DryRun: true,
			NamespaceMappings: map[string]string{"rt-app": "rt-dry"}})
		if res.Phase != layout.PhaseCompleted || !res.DryRun || res.Total(ActionCreated) < 20 {
			t.Errorf("phase %s, %d created", res.Phase, res.Total(ActionCreated))
		}
		rtWantAction(t, rtItems(res), "namespaces rt-dry", ActionCreated)
		if rtGet(t, cl, gvrNamespace, "", "rt-dry") != nil {
			t.Error("dry run created the namespace")
		}
		// Put "other" back for the tests below.
		res = rtRestore(t, r, sn, cl, RestoreOptions{IncludeNamespaces: []string{"rt-app"}, IncludeResources: []string{"configmaps"}})
		rtWantAction(t, rtItems(res), "configmaps rt-app/other", ActionCreated)
	})

	t.Run("mapped", func(t *testing.T) {
		images, err := ParseImageMappings([]string{"registry.old/team:mirror.new/team"})
		if err != nil {
			t.Fatal(err)
		}
		res := rtRestore(t, r, sn, cl, RestoreOptions{
			IncludeNamespaces:    []string{"rt-*"},
			NamespaceMappings:    map[string]string{"rt-app": "rt-copy"},
			StorageClassMappings: map[string]string{"rt-fast": "rt-standard"},
			ImageMappings:        images,
		})
		if res.Phase != layout.PhaseCompleted {
			t.Errorf("phase %s", res.Phase)
		}
		items := rtItems(res)
		rtWantAction(t, items, "namespaces rt-copy", ActionCreated)
		rtWantAction(t, items, "deployments.apps rt-copy/web", ActionCreated)
		rtWantAction(t, items, "persistentvolumes rt-pv", ActionSkippedExists) // the claim's PV, already there
		rtWantAction(t, items, "customresourcedefinitions.apiextensions.k8s.io rtwidgets.rt.example.com", ActionSkippedExists)
		rtWantAction(t, items, "rtwidgets.rt.example.com rt-copy/w1", ActionCreated)
		if it := items["deployments.apps rt-copy/web"]; it.SourceNamespace != "rt-app" {
			t.Errorf("source namespace %q", it.SourceNamespace)
		}
		if _, ok := items["storageclasses.storage.k8s.io rt-fast"]; ok {
			t.Error("the unmapped storage class was restored")
		}
		dep := rtGet(t, cl, gvrDeployment, "rt-copy", "web")
		spec, _, _ := unstructured.NestedMap(dep.Object, "spec", "template", "spec")
		img := spec["containers"].([]any)[0].(map[string]any)["image"]
		initImg := spec["initContainers"].([]any)[0].(map[string]any)["image"]
		if img != "mirror.new/team/web:1.0" || initImg != "mirror.new/team/init:1" {
			t.Errorf("images %v, %v", img, initImg)
		}
		if sc, _, _ := unstructured.NestedString(rtGet(t, cl, gvrPVC, "rt-copy", "data").Object, "spec", "storageClassName"); sc != "rt-standard" {
			t.Errorf("claim's storage class %q, want rt-standard", sc)
		}
		subj, _, _ := unstructured.NestedSlice(rtGet(t, cl, gvrRoleBind, "rt-copy", "app-reads").Object, "subjects")
		if ns := subj[0].(map[string]any)["namespace"]; ns != "rt-copy" {
			t.Errorf("role binding subject namespace %v", ns)
		}
		np := rtGet(t, cl, gvrService, "rt-copy", "web-np")
		ports, _, _ := unstructured.NestedSlice(np.Object, "spec", "ports")
		if p := ports[0].(map[string]any)["nodePort"].(int64); p == 30111 || p < 30000 || p > 32767 {
			t.Errorf("node port %d: want a new one", p)
		}
		orig, _, _ := unstructured.NestedString(rtGet(t, cl, gvrService, "rt-app", "web").Object, "spec", "clusterIP")
		cp, _, _ := unstructured.NestedString(rtGet(t, cl, gvrService, "rt-copy", "web").Object, "spec", "clusterIP")
		if cp == orig || net.ParseIP(cp) == nil {
			t.Errorf("copied service cluster IP %q (original %q)", cp, orig)
		}
		// A token secret made by hand comes back, with a token of the
		// cluster for the restored service account.
		rtWaitFor(t, "a new token in the restored token secret", 30*time.Second, func() bool {
			sec := rtGet(t, cl, gvrSecret, "rt-copy", "app-token")
			if sec == nil {
				return false
			}
			tok, _, _ := unstructured.NestedString(sec.Object, "data", "token")
			old, _, _ := unstructured.NestedString(rtGet(t, cl, gvrSecret, "rt-app", "app-token").Object, "data", "token")
			sa := rtGet(t, cl, schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, "rt-copy", "app")
			return tok != "" && tok != old && sec.GetAnnotations()["kubernetes.io/service-account.uid"] == string(sa.GetUID())
		})
		if res.Counts["secrets"][ActionSkipped] != 0 || res.Counts["events"][ActionSkipped] == 0 {
			t.Errorf("skipped counts: secrets %v, events %v", res.Counts["secrets"], res.Counts["events"])
		}
	})

	t.Run("filters", func(t *testing.T) {
		// A label selector; the namespace comes along.
		res := rtRestore(t, r, sn, cl, RestoreOptions{Selector: "tier=web", NamespaceMappings: map[string]string{"rt-app": "rt-sel"}})
		var got []string
		for _, it := range res.Items {
			if it.Action == ActionCreated {
				got = append(got, it.Resource+" "+itemName(it))
			}
		}
		want := "namespaces rt-sel, secrets rt-sel/creds, configmaps rt-sel/settings, deployments.apps rt-sel/web, rtwidgets.rt.example.com rt-sel/w1"
		if strings.Join(got, ", ") != want {
			t.Errorf("created with -l tier=web:\n got %s\nwant %s", strings.Join(got, ", "), want)
		}
		// Resources by name, kind and group; excluded PV; the claim then
		// gets a new volume; needed cluster objects come along.
		res = rtRestore(t, r, sn, cl, RestoreOptions{
			IncludeNamespaces: []string{"rt-app"}, NamespaceMappings: map[string]string{"rt-app": "rt-res"},
			IncludeResources: []string{"ConfigMap", "RtWidget", "persistentvolumeclaims"}, ExcludeResources: []string{"persistentvolumes"},
		})
		items := rtItems(res)
		for _, k := range []string{"configmaps rt-res/settings", "configmaps rt-res/other", "rtwidgets.rt.example.com rt-res/w2", "persistentvolumeclaims rt-res/data"} {
			rtWantAction(t, items, k, ActionCreated)
		}
		rtWantAction(t, items, "storageclasses.storage.k8s.io rt-fast", ActionSkippedExists)
		rtWantAction(t, items, "customresourcedefinitions.apiextensions.k8s.io rtwidgets.rt.example.com", ActionSkippedExists)
		if _, ok := items["persistentvolumes rt-pv"]; ok {
			t.Error("excluded PV listed")
		}
		if _, ok := items["deployments.apps rt-res/web"]; ok {
			t.Error("deployment restored though not included")
		}
		if v, _, _ := unstructured.NestedString(rtGet(t, cl, gvrPVC, "rt-res", "data").Object, "spec", "volumeName"); v != "" {
			t.Errorf("claim kept volume %q though its PV is not restored", v)
		}
		// No cluster-scoped objects at all.
		f := false
		res = rtRestore(t, r, sn, cl, RestoreOptions{
			IncludeNamespaces: []string{"rt-app"}, NamespaceMappings: map[string]string{"rt-app": "rt-nocl"},
			IncludeResources: []string{"persistentvolumeclaims"}, IncludeClusterResources: &f,
		})
		for _, it := range res.Items {
			if it.Namespace == "" && it.Resource != "namespaces" {
				t.Errorf("cluster-scoped %s %s restored with --include-cluster-resources=false", it.Resource, it.Name)
			}
		}
	})

	t.Run("round-trip", func(t *testing.T) {
		rtDeleteAndWait(t, cl, rtRef{gvr: gvrNamespace, name: "rt-app"}, rtRef{gvr: gvrPV, name: "rt-pv"},
			rtRef{gvr: gvrSC, name: "rt-fast"}, rtRef{gvr: gvrCRD, name: "rtwidgets.rt.example.com"})
		res := rtRestore(t, r, sn, cl, RestoreOptions{RestoreStatus: []string{"rtwidgets"}})
		if res.Phase != layout.PhaseCompleted || res.Total(ActionFailed) != 0 {
			t.Fatalf("phase %s, errors %v", res.Phase, res.Errors)
		}
		compared := 0
		for _, m := range src.Manifests {
			gr := m.GroupResource()
			if neverRestoreReason(gr, m.Namespace) != "" || gr == (schema.GroupResource{Resource: "endpoints"}) {
				continue // not restored, or rewritten by a controller
			}
			backed := backedUp(gr, m.Namespace, m.Name)
			if skipRuleReason(gr, backed, skipRules{}) != "" {
				if live := rtGet(t, cl, gr.WithVersion("v1"), m.Namespace, m.Name); live != nil {
					t.Errorf("%s was restored", m.Path)
				}
				continue
			}
			gv, _ := schema.ParseGroupVersion(backed.GetAPIVersion())
			live := rtGet(t, cl, gr.WithVersion(gv.Version), m.Namespace, m.Name)
			if live == nil {
				t.Errorf("%s: not restored", m.Path)
				continue
			}
			rtEqual(t, m.Path, gr, backed, live)
			compared++
		}
		if compared < 25 {
			t.Errorf("only %d objects compared", compared)
		}
		for _, name := range []string{"web", "web-np"} {
			svc := rtGet(t, cl, gvrService, "rt-app", name)
			ip, _, _ := unstructured.NestedString(svc.Object, "spec", "clusterIP")
			if parsed := net.ParseIP(ip); parsed == nil || !(&net.IPNet{IP: net.IPv4(10, 0, 0, 0), Mask: net.CIDRMask(24, 32)}).Contains(parsed) {
				t.Errorf("service %s: cluster IP %q not allocated from the service range", name, ip)
			}
		}
		if ip, _, _ := unstructured.NestedString(rtGet(t, cl, gvrService, "rt-app", "db-headless").Object, "spec", "clusterIP"); ip != "None" {
			t.Errorf("headless service got cluster IP %q", ip)
		}
		w1 := rtGet(t, cl, gvrWidget, "rt-app", "w1")
		if ready, _, _ := unstructured.NestedBool(w1.Object, "status", "ready"); !ready {
			t.Errorf("custom resource status not restored: %v", w1.Object["status"])
		}
		if dep := rtGet(t, cl, gvrDeployment, "rt-app", "web"); dep.GetLabels()[layout.LabelBackupName] != "rt-app" {
			t.Errorf("restored object labels %v", dep.GetLabels())
		}
		rtWaitFor(t, "the restored claim to bind", 30*time.Second, func() bool {
			phase, _, _ := unstructured.NestedString(rtGet(t, cl, gvrPVC, "rt-app", "data").Object, "status", "phase")
			return phase == "Bound"
		})
	})
}

// TestRestoreInvalidManifest restores a backup with a manifest that cannot
// be parsed: that item fails, the rest is restored.
func TestRestoreInvalidManifest(t *testing.T) {
	cl := rtConnect(t)
	rtCleanup(t, cl, "rt-bad")
	files := map[string][]byte{}
	for i := range 3 {
		o := obj(t, fmt.Sprintf(`{apiVersion: v1, kind: ConfigMap, metadata: {name: cm%d, namespace: rt-bad, uid: u%d, resourceVersion: "%d"}, data: {i: "%d"}}`, i, i, i+10, i))
		p, buf := rtManifest(t, grConfigMap, o)
		files[p] = buf
	}
	files[layout.ManifestPath("rt-bad", "configmaps", "", "broken")] = []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken\n  data: [")
	files[layout.ManifestPath("rt-bad", "configmaps", "", "liar")] = []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: somebody-else, namespace: rt-bad}\n")
	r := rtRepo(t)
	sn := rtWriteBackup(t, r, "rt-bad", files)
	res := rtRestore(t, r, sn, cl, RestoreOptions{})
	if res.Phase != layout.PhasePartiallyFailed {
		t.Errorf("phase %s, want PartiallyFailed", res.Phase)
	}
	items := rtItems(res)
	for i := range 3 {
		rtWantAction(t, items, fmt.Sprintf("configmaps rt-bad/cm%d", i), ActionCreated)
	}
	rtWantAction(t, items, "configmaps rt-bad/broken", ActionFailed)
	rtWantAction(t, items, "configmaps rt-bad/liar", ActionFailed)
	rtWantAction(t, items, "namespaces rt-bad", ActionCreated) // not in the backup: made empty
	if len(res.Errors) != 2 || !strings.Contains(res.Errors[0], "parse") {
		t.Errorf("errors %q", res.Errors)
	}
	if rtGet(t, cl, gvrConfigMap, "rt-bad", "cm1") == nil {
		t.Error("cm1 not restored")
	}

	// Only broken items: Failed.
	bad := map[string][]byte{layout.ManifestPath("rt-bad", "configmaps", "", "broken"): []byte("{")}
	res = rtRestore(t, r, rtWriteBackup(t, r, "all-bad", bad), cl, RestoreOptions{})
	if res.Phase != layout.PhaseFailed {
		t.Errorf("phase %s, want Failed", res.Phase)
	}
}
