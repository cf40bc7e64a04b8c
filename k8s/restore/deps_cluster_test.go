package restore

import (
	"context"
	"testing"

	"github.com/cairn-backup/cairn/k8s/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	gvrCRB           = grCRB.WithVersion("v1")
	gvrClusterRole   = grClusterRole.WithVersion("v1")
	gvrPriorityClass = grPriorityClass.WithVersion("v1")
)

const rtNeedYAML = `
apiVersion: v1
kind: Namespace
metadata: {name: rt-need}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: runner, namespace: rt-need}
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: rt-need-high}
value: 100000
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: rt-need-unused}
value: 10
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: rt-need}
spec:
  replicas: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: runner
      priorityClassName: rt-need-high
      containers: [{name: web, image: "registry.invalid/web:1"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: rt-need-reader}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: rt-need-reads}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: rt-need-reader}
subjects:
- {kind: ServiceAccount, name: runner, namespace: rt-need}
- {kind: ServiceAccount, name: runner, namespace: rt-need-elsewhere}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: rt-need-unrelated}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: rt-need-reader}
subjects: [{kind: ServiceAccount, name: runner, namespace: rt-need-elsewhere}]
`

// rtCanGetConfigMaps asks the API server whether a service account may
// get configmaps cluster-wide.
func rtCanGetConfigMaps(t *testing.T, cl *kube.Clients, ns, sa string) bool {
	t.Helper()
	sar := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
		"spec": map[string]any{
			"user":               "system:serviceaccount:" + ns + ":" + sa,
			"groups":             []any{"system:serviceaccounts", "system:serviceaccounts:" + ns},
			"resourceAttributes": map[string]any{"verb": "get", "resource": "configmaps", "namespace": "kube-system"},
		},
	}}
	out, err := cl.Dynamic.Resource(schema.GroupVersionResource{Group: "authorization.k8s.io", Version: "v1", Resource: "subjectaccessreviews"}).
		Create(context.Background(), sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ok, _, _ := unstructured.NestedBool(out.Object, "status", "allowed")
	return ok
}

// TestRestoreClusterNeeds: a namespace restore brings the
// ClusterRoleBinding of its ServiceAccount, that binding's ClusterRole and
// the PriorityClass of its Deployment, and nothing else cluster-scoped;
// --include-cluster-resources=false and --exclude-resources keep them
// out. Restored into a mapped namespace beside the original, the binding
// is restored as a copy for the new namespace and the original keeps
// binding the original account.
func TestRestoreClusterNeeds(t *testing.T) {
	cl := rtConnect(t)
	clusterObjs := []rtRef{
		{gvr: gvrCRB, name: "rt-need-reads"}, {gvr: gvrCRB, name: "rt-need-unrelated"},
		{gvr: gvrCRB, name: "rt-need-reads-rt-need-copy"}, {gvr: gvrClusterRole, name: "rt-need-reader"},
		{gvr: gvrPriorityClass, name: "rt-need-high"}, {gvr: gvrPriorityClass, name: "rt-need-unused"},
	}
	rtDeleteAndWait(t, cl, append([]rtRef{{gvr: gvrNamespace, name: "rt-need"}}, clusterObjs...)...)
	rtApply(t, cl, rtNeedYAML)
	rtCleanup(t, cl, "rt-need", "rt-need-copy", "rt-need-nocl", "rt-need-ex")
	t.Cleanup(func() {
		for _, o := range clusterObjs {
			_ = rtResource(cl, o).Delete(context.Background(), o.name, metav1.DeleteOptions{})
		}
	})
	files := rtLiveFiles(t, cl, []string{"rt-need"}, map[schema.GroupResource][]string{
		grCRB: {"rt-need-reads", "rt-need-unrelated"}, grClusterRole: {"rt-need-reader"},
		grPriorityClass: {"rt-need-high", "rt-need-unused"},
	})
	r := rtRepo(t)
	sn := rtWriteBackup(t, r, "rt-need", files)

	// Into a cluster without any of it.
	rtDeleteAndWait(t, cl, append([]rtRef{{gvr: gvrNamespace, name: "rt-need"}}, clusterObjs...)...)
	res := rtRestore(t, r, sn, cl, RestoreOptions{IncludeNamespaces: []string{"rt-need"}})
	items := rtItems(res)
	for _, k := range []string{
		"clusterrolebindings.rbac.authorization.k8s.io rt-need-reads", "clusterroles.rbac.authorization.k8s.io rt-need-reader",
		"priorityclasses.scheduling.k8s.io rt-need-high", "deployments.apps rt-need/web", "serviceaccounts rt-need/runner",
	} {
		rtWantAction(t, items, k, ActionCreated)
	}
	for _, k := range []string{"clusterrolebindings.rbac.authorization.k8s.io rt-need-unrelated", "priorityclasses.scheduling.k8s.io rt-need-unused"} {
		if it, ok := items[k]; ok {
			t.Errorf("%s restored though nothing restored needs it: %+v", k, it)
		}
	}
	if !rtCanGetConfigMaps(t, cl, "rt-need", "runner") {
		t.Error("the restored account lacks the rights of its restored binding")
	}

	// A copy beside the original.
	res = rtRestore(t, r, sn, cl, RestoreOptions{IncludeNamespaces: []string{"rt-need"}, NamespaceMappings: map[string]string{"rt-need": "rt-need-copy"}})
	items = rtItems(res)
	rtWantAction(t, items, "clusterrolebindings.rbac.authorization.k8s.io rt-need-reads-rt-need-copy", ActionCreated)
	rtWantAction(t, items, "clusterroles.rbac.authorization.k8s.io rt-need-reader", ActionSkippedExists)
	rtWantAction(t, items, "priorityclasses.scheduling.k8s.io rt-need-high", ActionSkippedExists)
	subjects := func(name string) []any {
		crb := rtGet(t, cl, gvrCRB, "", name)
		if crb == nil {
			t.Fatalf("binding %s missing", name)
		}
		s, _, _ := unstructured.NestedSlice(crb.Object, "subjects")
		return s
	}
	if got := subjects("rt-need-reads"); len(got) != 2 || got[0].(map[string]any)["namespace"] != "rt-need" {
		t.Errorf("original binding changed: %v", got)
	}
	if got := subjects("rt-need-reads-rt-need-copy"); len(got) != 2 || got[0].(map[string]any)["namespace"] != "rt-need-copy" ||
		got[1].(map[string]any)["namespace"] != "rt-need-elsewhere" {
		t.Errorf("copied binding's subjects: %v", got)
	}
	if !rtCanGetConfigMaps(t, cl, "rt-need-copy", "runner") || !rtCanGetConfigMaps(t, cl, "rt-need", "runner") {
		t.Error("the copy's or the original's account lacks the binding's rights")
	}

	// --include-cluster-resources=false wins; so does --exclude-resources.
	no := false
	res = rtRestore(t, r, sn, cl, RestoreOptions{IncludeNamespaces: []string{"rt-need"}, NamespaceMappings: map[string]string{"rt-need": "rt-need-nocl"}, IncludeClusterResources: &no})
	for _, it := range res.Items {
		if it.Namespace == "" && it.Resource != "namespaces" {
			t.Errorf("--include-cluster-resources=false restored %s %s", it.Resource, it.Name)
		}
	}
	res = rtRestore(t, r, sn, cl, RestoreOptions{IncludeNamespaces: []string{"rt-need"}, NamespaceMappings: map[string]string{"rt-need": "rt-need-ex"},
		ExcludeResources: []string{"clusterrolebinding", "pc"}})
	for _, it := range res.Items {
		if it.Namespace == "" && it.Resource != "namespaces" {
			t.Errorf("excluded by name, restored: %s %s (%s)", it.Resource, it.Name, it.Action)
		}
	}
	if rtGet(t, cl, gvrCRB, "", "rt-need-reads-rt-need-ex") != nil {
		t.Error("an excluded binding was restored")
	}
}
