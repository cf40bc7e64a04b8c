package restore

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/k8s/layout"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// nodePortOf is the node port of the service port named name.
func nodePortOf(t *testing.T, svc *unstructured.Unstructured, name string) int64 {
	t.Helper()
	if svc == nil {
		t.Fatal("service not there")
	}
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	for _, p := range ports {
		if pm := p.(map[string]any); pm["name"] == name {
			n, _ := pm["nodePort"].(int64)
			return n
		}
	}
	t.Fatalf("service %s has no port %s", svc.GetName(), name)
	return 0
}

// TestRestoreNodePorts restores Services with node ports set by hand
// (by a create and by a server-side apply) and allocated ones: over the
// existing Services with --preserve-nodeports, into a copy beside them,
// and after deleting them.
func TestRestoreNodePorts(t *testing.T) {
	cl := rtConnect(t)
	ctx := context.Background()
	rtCleanup(t, cl, "rt-np", "rt-np-copy", "rt-np-copy2", "rt-np-block")
	rtApply(t, cl, `{apiVersion: v1, kind: Namespace, metadata: {name: rt-np}}`)
	svcs := cl.Dynamic.Resource(gvrService).Namespace("rt-np")
	// "explicit": port a given, port b allocated.
	if _, err := svcs.Create(ctx, obj(t, `{apiVersion: v1, kind: Service, metadata: {name: explicit, namespace: rt-np},
	  spec: {type: NodePort, ports: [{name: a, port: 80, nodePort: 30401}, {name: b, port: 81}]}}`),
		metav1.CreateOptions{FieldManager: "kubectl-create"}); err != nil {
		t.Fatal(err)
	}
	// A later write of the whole object (kubectl edit, a controller) does
	// not make the allocated port b anyone's: only changed fields are.
	edited := rtGet(t, cl, gvrService, "rt-np", "explicit")
	edited.SetLabels(map[string]string{"edited": "yes"})
	if _, err := svcs.Update(ctx, edited, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	ssa := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"ssa","namespace":"rt-np"},
	  "spec":{"type":"NodePort","ports":[{"name":"a","port":80,"nodePort":30402}]}}`
	if _, err := svcs.Patch(ctx, "ssa", types.ApplyPatchType, []byte(ssa), metav1.PatchOptions{FieldManager: "argocd"}); err != nil {
		t.Fatal(err)
	}
	autoB := nodePortOf(t, rtGet(t, cl, gvrService, "rt-np", "explicit"), "b")
	files := rtLiveFiles(t, cl, []string{"rt-np"}, nil)
	r := rtRepo(t)
	sn := rtWriteBackup(t, r, "rt-np", files)

	t.Run("existing-preserved", func(t *testing.T) {
		// The API server refuses the create for the ports the existing
		// Services hold before it finds them existing.
		for policy, want := range map[string]string{ExistingNone: ActionSkippedExists, ExistingUpdate: ActionUpdated} {
			res := rtRestore(t, r, sn, cl, RestoreOptions{IncludeResources: []string{"services"}, PreserveNodePorts: true, ExistingResourcePolicy: policy})
			items := rtItems(res)
			rtWantAction(t, items, "services rt-np/explicit", want)
			rtWantAction(t, items, "services rt-np/ssa", want)
			if res.Phase != layout.PhaseCompleted {
				t.Errorf("policy %s: phase %s, errors %q", policy, res.Phase, res.Errors)
			}
		}
		if p := nodePortOf(t, rtGet(t, cl, gvrService, "rt-np", "explicit"), "b"); p != autoB {
			t.Errorf("update moved node port %d to %d", autoB, p)
		}
	})

	t.Run("copy-beside", func(t *testing.T) {
		// The ports set by hand are held by the originals: the copies get
		// new ones, with a warning naming the port and its holder.
		res := rtRestore(t, r, sn, cl, RestoreOptions{NamespaceMappings: map[string]string{"rt-np": "rt-np-copy"}})
		items := rtItems(res)
		rtWantAction(t, items, "services rt-np-copy/explicit", ActionCreated)
		if it := items["services rt-np-copy/ssa"]; it.Action != ActionCreated || !strings.Contains(it.Reason, "node port 30402 (held by service rt-np/ssa)") {
			t.Errorf("copy of ssa: %+v", it)
		}
		if !strings.Contains(strings.Join(res.Warnings, "\n"), "services rt-np-copy/explicit: node port 30401 (held by service rt-np/explicit)") {
			t.Errorf("warnings %q", res.Warnings)
		}
		if p := nodePortOf(t, rtGet(t, cl, gvrService, "rt-np-copy", "explicit"), "a"); p == 30401 || p == 0 {
			t.Errorf("copy's node port %d", p)
		}
		// Asked to keep every port: a clear failure.
		res = rtRestore(t, r, sn, cl, RestoreOptions{NamespaceMappings: map[string]string{"rt-np": "rt-np-copy2"}, PreserveNodePorts: true})
		it := rtItems(res)["services rt-np-copy2/explicit"]
		if it.Action != ActionFailed || !strings.Contains(it.Reason, "node port 30401 (held by service rt-np/explicit) already allocated") {
			t.Errorf("preserved copy: %+v", it)
		}
		if res.Phase != layout.PhasePartiallyFailed {
			t.Errorf("phase %s", res.Phase)
		}
	})

	t.Run("round-trip", func(t *testing.T) {
		rtDeleteAndWait(t, cl, rtRef{gvr: gvrNamespace, name: "rt-np"}, rtRef{gvr: gvrNamespace, name: "rt-np-copy"}, rtRef{gvr: gvrNamespace, name: "rt-np-copy2"})
		// Hold the allocated port: kept, it would fail or move.
		rtApply(t, cl, `{apiVersion: v1, kind: Namespace, metadata: {name: rt-np-block}}
---
{apiVersion: v1, kind: Service, metadata: {name: block, namespace: rt-np-block}, spec: {type: NodePort, ports: [{port: 80, nodePort: `+strconv.FormatInt(autoB, 10)+`}]}}`)
		res := rtRestore(t, r, sn, cl, RestoreOptions{})
		if res.Phase != layout.PhaseCompleted || len(res.Warnings) > 0 {
			t.Errorf("phase %s, warnings %q", res.Phase, res.Warnings)
		}
		explicit := rtGet(t, cl, gvrService, "rt-np", "explicit")
		if p := nodePortOf(t, explicit, "a"); p != 30401 {
			t.Errorf("node port set by create: %d, want 30401", p)
		}
		if p := nodePortOf(t, explicit, "b"); p == autoB || p == 0 {
			t.Errorf("allocated node port %d came back as %d, want a new one", autoB, p)
		}
		if p := nodePortOf(t, rtGet(t, cl, gvrService, "rt-np", "ssa"), "a"); p != 30402 {
			t.Errorf("node port set by server-side apply: %d, want 30402", p)
		}
	})
}

// managedEntries is an object's field managers without their times.
func managedEntries(o *unstructured.Unstructured) []metav1.ManagedFieldsEntry {
	var out []metav1.ManagedFieldsEntry
	for _, e := range o.GetManagedFields() {
		e.Time = nil
		out = append(out, e)
	}
	return out
}

// TestRestoreManagedFields restores objects applied server-side by a named
// field manager: afterwards that manager applies again without forcing,
// after a create and after an update.
func TestRestoreManagedFields(t *testing.T) {
	cl := rtConnect(t)
	ctx := context.Background()
	rtCleanup(t, cl, "rt-mf")
	apply := func(manager, value string) error {
		doc := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","namespace":"rt-mf","labels":{"app":"mf"}},"data":{"a":"` + value + `"}}`
		_, err := cl.Dynamic.Resource(gvrConfigMap).Namespace("rt-mf").Patch(ctx, "cm", types.ApplyPatchType, []byte(doc), metav1.PatchOptions{FieldManager: manager})
		return err
	}
	rtApply(t, cl, `{apiVersion: v1, kind: Namespace, metadata: {name: rt-mf}}`)
	if err := apply("argocd", "1"); err != nil {
		t.Fatal(err)
	}
	backed := rtGet(t, cl, gvrConfigMap, "rt-mf", "cm")
	files := rtLiveFiles(t, cl, []string{"rt-mf"}, nil)
	r := rtRepo(t)
	sn := rtWriteBackup(t, r, "rt-mf", files)
	check := func(t *testing.T, value string) {
		t.Helper()
		live := rtGet(t, cl, gvrConfigMap, "rt-mf", "cm")
		if got, want := managedEntries(live), managedEntries(backed); !reflect.DeepEqual(got, want) {
			g, _ := yaml.Marshal(got)
			w, _ := yaml.Marshal(want)
			t.Errorf("managedFields after restore:\n%s\nwant:\n%s", g, w)
		}
		if err := apply("argocd", value); err != nil {
			t.Errorf("server-side apply by the backed-up manager after restore: %v", err)
		}
	}

	t.Run("created", func(t *testing.T) {
		rtDeleteAndWait(t, cl, rtRef{gvr: gvrNamespace, name: "rt-mf"})
		res := rtRestore(t, r, sn, cl, RestoreOptions{})
		rtWantAction(t, rtItems(res), "configmaps rt-mf/cm", ActionCreated)
		if len(res.Warnings) > 0 {
			t.Errorf("warnings %q", res.Warnings)
		}
		check(t, "2")
	})
	t.Run("updated", func(t *testing.T) {
		// Another manager takes the field; the update gives it back.
		cm := rtGet(t, cl, gvrConfigMap, "rt-mf", "cm")
		cm.Object["data"] = map[string]any{"a": "edited"}
		if _, err := cl.Dynamic.Resource(gvrConfigMap).Namespace("rt-mf").Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		res := rtRestore(t, r, sn, cl, RestoreOptions{ExistingResourcePolicy: ExistingUpdate})
		rtWantAction(t, rtItems(res), "configmaps rt-mf/cm", ActionUpdated)
		check(t, "3")
	})
}

// TestRestoreStatusConflict restores a custom resource's status while
// someone writes the object between its create and the status write.
func TestRestoreStatusConflict(t *testing.T) {
	cl := rtConnect(t)
	ctx := context.Background()
	gvr := schema.GroupVersionResource{Group: "rtapply.example.com", Version: "v1", Resource: "rtgadgets"}
	t.Cleanup(func() {
		_ = cl.Dynamic.Resource(gvrCRD).Delete(context.Background(), "rtgadgets.rtapply.example.com", metav1.DeleteOptions{})
	})
	rtCleanup(t, cl, "rt-st")
	rtApply(t, cl, `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rtgadgets.rtapply.example.com}
spec:
  group: rtapply.example.com
  scope: Namespaced
  names: {plural: rtgadgets, singular: rtgadget, kind: RtGadget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: v1
kind: Namespace
metadata: {name: rt-st}
---
apiVersion: rtapply.example.com/v1
kind: RtGadget
metadata: {name: g, namespace: rt-st}
spec: {size: 1}
status: {ready: true}
`)
	files := rtLiveFiles(t, cl, []string{"rt-st"}, nil)
	r := rtRepo(t)
	sn := rtWriteBackup(t, r, "rt-st", files)
	if err := cl.Dynamic.Resource(gvr).Namespace("rt-st").Delete(ctx, "g", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	res := rtRestore(t, r, sn, cl, RestoreOptions{IncludeResources: []string{"rtgadgets"}, RestoreStatus: []string{"rtgadgets"},
		beforeStatus: func(o *unstructured.Unstructured) {
			if calls.Add(1) > 2 {
				return
			}
			// A controller's write: the status write's version is stale.
			live := rtGet(t, cl, gvr, "rt-st", "g")
			live.Object["spec"] = map[string]any{"size": int64(calls.Load() + 1)}
			if _, err := cl.Dynamic.Resource(gvr).Namespace("rt-st").Update(ctx, live, metav1.UpdateOptions{}); err != nil {
				t.Error(err)
			}
		}})
	it := rtItems(res)["rtgadgets.rtapply.example.com rt-st/g"]
	if it.Action != ActionCreated || it.Reason != "" || len(res.Warnings) > 0 {
		t.Errorf("item %+v, warnings %q", it, res.Warnings)
	}
	if calls.Load() != 3 {
		t.Errorf("%d status writes, want 3 (two conflicts)", calls.Load())
	}
	g := rtGet(t, cl, gvr, "rt-st", "g")
	if ready, _, _ := unstructured.NestedBool(g.Object, "status", "ready"); !ready {
		t.Errorf("status not restored: %v", g.Object["status"])
	}
	if size, _, _ := unstructured.NestedInt64(g.Object, "spec", "size"); size != 3 {
		t.Errorf("the concurrent write was lost: spec %v", g.Object["spec"])
	}
}

// TestRestoreDefaultStorageClass restores default StorageClasses into a
// cluster with and without a default one.
func TestRestoreDefaultStorageClass(t *testing.T) {
	cl := rtConnect(t)
	ctx := context.Background()
	names := []string{"rt-def-ga", "rt-def-beta"}
	cleanup := func() {
		for _, n := range names {
			_ = cl.Dynamic.Resource(gvrSC).Delete(context.Background(), n, metav1.DeleteOptions{})
		}
	}
	t.Cleanup(cleanup)
	list, err := cl.Dynamic.Resource(gvrSC).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if isDefaultClass(&list.Items[i]) {
			t.Fatalf("the test cluster has a default class %s already", list.Items[i].GetName())
		}
	}
	class := func(name, annotation string) (string, []byte) {
		return rtManifest(t, grStorageClass, obj(t, `{apiVersion: storage.k8s.io/v1, kind: StorageClass, provisioner: example.com/none,
		  metadata: {name: `+name+`, uid: old, annotations: {`+annotation+`: "true"}}}`))
	}
	r := rtRepo(t)
	backup := func(name string, classes ...string) *RestoreResult {
		files := map[string][]byte{}
		for _, c := range classes {
			ann := defaultClassAnnotations[0]
			if c == "rt-def-beta" {
				ann = defaultClassAnnotations[1]
			}
			p, b := class(c, ann)
			files[p] = b
		}
		res := rtRestore(t, r, rtWriteBackup(t, r, name, files), cl, RestoreOptions{ExistingResourcePolicy: ExistingUpdate})
		if res.Phase != layout.PhaseCompleted {
			t.Errorf("phase %s", res.Phase)
		}
		return res
	}
	annotation := func(name string) string {
		ann := rtGet(t, cl, gvrSC, "", name).GetAnnotations()
		return ann[defaultClassAnnotations[0]] + "/" + ann[defaultClassAnnotations[1]]
	}

	// No default in the target: the restored one is.
	if res := backup("one", "rt-def-ga"); len(res.Warnings) > 0 {
		t.Errorf("restore into a cluster without a default: warnings %q", res.Warnings)
	}
	if got := annotation("rt-def-ga"); got != "true/" {
		t.Errorf("rt-def-ga annotations %s, want it default", got)
	}
	// Again, over itself: still the only default.
	backup("again", "rt-def-ga")
	if got := annotation("rt-def-ga"); got != "true/" {
		t.Errorf("rt-def-ga after an update: %s", got)
	}
	// Another default (beta annotation) beside it: made not default.
	res := backup("two", "rt-def-beta")
	want := "storageclasses.storage.k8s.io rt-def-beta: was the default class in the backup; restored as not default, the target's default stays rt-def-ga"
	if len(res.Warnings) != 1 || res.Warnings[0] != want {
		t.Errorf("warnings %q, want %q", res.Warnings, want)
	}
	if got := annotation("rt-def-beta"); got != "/false" {
		t.Errorf("rt-def-beta annotations %s, want not default", got)
	}
	// Both into a cluster without: exactly one stays default.
	cleanup()
	rtDeleteAndWait(t, cl, rtRef{gvr: gvrSC, name: "rt-def-ga"}, rtRef{gvr: gvrSC, name: "rt-def-beta"})
	backup("both", "rt-def-ga", "rt-def-beta")
	defaults := 0
	for _, n := range names {
		if isDefaultClass(rtGet(t, cl, gvrSC, "", n)) {
			defaults++
		}
	}
	if defaults != 1 {
		t.Errorf("%d default classes after restoring two, want 1", defaults)
	}
}
