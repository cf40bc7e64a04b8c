package restore

import (
	"context"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var grGizmo = schema.GroupResource{Group: "rtflt.example.com", Resource: "rtgizmos"}

// rtFilterFiles is a backup of namespace rt-flt: a Service, a Deployment,
// a ConfigMap and a custom resource whose CRD (short name "rtgz") only the
// backup holds.
func rtFilterFiles(t *testing.T) map[string][]byte {
	files := map[string][]byte{}
	for _, doc := range []struct {
		gr  schema.GroupResource
		yml string
	}{
		{grCRD, `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rtgizmos.rtflt.example.com}
spec:
  group: rtflt.example.com
  scope: Namespaced
  names: {plural: rtgizmos, singular: rtgizmo, kind: RtGizmo, shortNames: [rtgz]}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`},
		{grGizmo, `{apiVersion: rtflt.example.com/v1, kind: RtGizmo, metadata: {name: g1, namespace: rt-flt}, spec: {size: 3}}`},
		{grService, `{apiVersion: v1, kind: Service, metadata: {name: front, namespace: rt-flt}, spec: {ports: [{port: 80}]}}`},
		{grConfigMap, `{apiVersion: v1, kind: ConfigMap, metadata: {name: settings, namespace: rt-flt}, data: {a: b}}`},
		{schema.GroupResource{Group: "apps", Resource: "deployments"}, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: rt-flt}
spec:
  replicas: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "registry.invalid/web:1"}]}
`},
	} {
		p, buf := rtManifest(t, doc.gr, obj(t, doc.yml))
		files[p] = buf
	}
	return files
}

// TestRestoreFilterNames: --exclude-resources svc,deploy leaves the Service
// and the Deployment out; the short name of a CRD that only the backup
// holds (the target does not serve it yet) selects its objects; a name that matches nothing, in the target or
// the backup, is warned about once, in the backup's words.
func TestRestoreFilterNames(t *testing.T) {
	cl := rtConnect(t)
	crd := rtRef{gvr: gvrCRD, name: "rtgizmos.rtflt.example.com"}
	rtDeleteAndWait(t, cl, crd)
	rtCleanup(t, cl, "rt-flt-a", "rt-flt-b")
	t.Cleanup(func() { _ = rtResource(cl, crd).Delete(context.Background(), crd.name, metav1.DeleteOptions{}) })
	r := rtRepo(t)
	sn := rtWriteBackup(t, r, "rt-flt", rtFilterFiles(t))

	res := rtRestore(t, r, sn, cl, RestoreOptions{
		IncludeNamespaces: []string{"rt-flt"}, NamespaceMappings: map[string]string{"rt-flt": "rt-flt-a"},
		IncludeResources: []string{"rtgz", "cm", "svc", "deployments.apps"},
		ExcludeResources: []string{"svc", "deploy", "nosuch"}, RestoreStatus: []string{"nosuch"},
	})
	items := rtItems(res)
	for _, k := range []string{"configmaps rt-flt-a/settings", "rtgizmos.rtflt.example.com rt-flt-a/g1", "customresourcedefinitions.apiextensions.k8s.io rtgizmos.rtflt.example.com"} {
		rtWantAction(t, items, k, ActionCreated)
	}
	for _, k := range []string{"services rt-flt-a/front", "deployments.apps rt-flt-a/web"} {
		if it, ok := items[k]; ok {
			t.Errorf("excluded by short name, restored: %+v", it)
		}
	}
	if rtGet(t, cl, gvrService, "rt-flt-a", "front") != nil || rtGet(t, cl, gvrDeployment, "rt-flt-a", "web") != nil {
		t.Error("an excluded object exists")
	}
	n := 0
	for _, w := range res.Warnings {
		if strings.Contains(w, `"nosuch"`) {
			n++
			if w != kube.UnmatchedResourceWarning("nosuch") {
				t.Errorf("warning %q", w)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d warnings for nosuch, want 1: %q", n, res.Warnings)
	}

	// By kind, now that the target serves the CRD.
	res = rtRestore(t, r, sn, cl, RestoreOptions{
		IncludeNamespaces: []string{"rt-flt"}, NamespaceMappings: map[string]string{"rt-flt": "rt-flt-b"},
		IncludeResources: []string{"RtGizmo"},
	})
	var created []string
	for _, it := range res.Items {
		if it.Action == ActionCreated {
			created = append(created, it.Resource+" "+itemName(it))
		}
	}
	if got := strings.Join(created, ", "); got != "namespaces rt-flt-b, rtgizmos.rtflt.example.com rt-flt-b/g1" {
		t.Errorf("created with --include-resources RtGizmo: %s", got)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings: %q", res.Warnings)
	}
}
