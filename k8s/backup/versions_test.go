package backup

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/snapshot"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestVersionManifestPath(t *testing.T) {
	for _, c := range []struct{ group, version, ns, resource, name, want string }{
		{"example.com", "v1", "shop", "things", "t1", "/resource-versions/example.com/v1/namespaces/shop/things.example.com/t1.yaml"},
		{"example.com", "v1", "", "clusterthings", "c", "/resource-versions/example.com/v1/cluster/clusterthings.example.com/c.yaml"},
		{"", "v2", "shop", "pods", "p", "/resource-versions/core/v2/namespaces/shop/pods/p.yaml"},
	} {
		if got := layout.VersionManifestPath(c.group, c.version, c.ns, c.resource, c.name); got != c.want {
			t.Errorf("VersionManifestPath = %s, want %s", got, c.want)
		}
	}
}

// TestBackupVersions: the objects of a CRD serving v1 and v2 (v3alpha1
// not served) and of autoscaling (v2 and v1) are saved at the preferred
// version in /resources, as before, and at the other served version under
// /resource-versions; backup.json lists the other versions.
func TestBackupVersions(t *testing.T) {
	cl := btClients(t, 0)
	ctx := context.Background()
	ns := btNamespace(t, cl, "bt-versions", nil)
	sfx := btSuffix()
	group := "bt" + sfx + ".versions.example.com"
	btApply(t, cl, ns, sfx, `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.btSFX.versions.example.com}
spec:
  group: btSFX.versions.example.com
  scope: Namespaced
  names: {plural: things, singular: thing, kind: Thing}
  conversion: {strategy: None}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
  - {name: v2, served: true, storage: false, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
  - {name: v3alpha1, served: false, storage: false, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}]
`)
	crd := "things." + group
	btWaitCRD(t, cl, crd)
	things := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "things"}
	for _, name := range []string{"t1", "t2"} {
		obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": group + "/v1", "kind": "Thing",
			"metadata": map[string]any{"name": name}, "spec": map[string]any{"size": int64(3)}}}
		if _, err := cl.Dynamic.Resource(things).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		cl.Dynamic.Resource(things).Namespace(ns).DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{})
	})

	r, _ := btRepo(t)
	res, err := Backup(ctx, cl, r, BackupOptions{Name: "versions", Spec: layout.BackupSpec{IncludeNamespaces: []string{ns}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Info.Phase != layout.PhaseCompleted {
		t.Fatalf("phase %s: %v", res.Info.Phase, res.Info.Errors)
	}
	nodes := btTree(t, r, res.Snapshot)
	for _, c := range []struct{ path, apiVersion string }{
		{layout.ManifestPath(ns, "things", group, "t1"), group + "/v2"}, // preferred: the highest version
		{layout.ManifestPath(ns, "things", group, "t2"), group + "/v2"},
		{layout.VersionManifestPath(group, "v1", ns, "things", "t1"), group + "/v1"},
		{layout.VersionManifestPath(group, "v1", ns, "things", "t2"), group + "/v1"},
		{layout.ManifestPath(ns, "horizontalpodautoscalers", "autoscaling", "web"), "autoscaling/v2"},
		{layout.VersionManifestPath("autoscaling", "v1", ns, "horizontalpodautoscalers", "web"), "autoscaling/v1"},
	} {
		obj := btManifest(t, r, nodes, c.path)
		if obj.GetAPIVersion() != c.apiVersion || obj.GetNamespace() != ns {
			t.Errorf("%s: apiVersion %s namespace %s, want %s", c.path, obj.GetAPIVersion(), obj.GetNamespace(), c.apiVersion)
		}
	}
	hpaV1 := btManifest(t, r, nodes, layout.VersionManifestPath("autoscaling", "v1", ns, "horizontalpodautoscalers", "web"))
	if cpu, _, _ := unstructured.NestedInt64(hpaV1.Object, "spec", "targetCPUUtilizationPercentage"); cpu != 50 {
		t.Errorf("autoscaling/v1 copy is not the v1 form: %v", hpaV1.Object["spec"])
	}
	for p := range nodes {
		if strings.Contains(p, "/v3alpha1") || (strings.HasPrefix(p, "/resource-versions/") && strings.Contains(p, "/"+group+"/v2/")) {
			t.Errorf("%s saved: not served, or the /resources copy's version", p)
		}
	}
	// Only objects of the backup: nothing of other namespaces.
	for p, n := range nodes {
		if strings.HasPrefix(p, "/resource-versions/") && n.Type == snapshot.NodeFile && !strings.Contains(p, "/namespaces/"+ns+"/") {
			t.Errorf("%s saved: not in the backup's namespace", p)
		}
	}
	var info layout.BackupInfo
	if err := json.Unmarshal(btReadFile(t, r, nodes["/backup.json"]), &info); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.ResourceVersions[crd], []string{"v1"}) || !slices.Equal(info.ResourceVersions["horizontalpodautoscalers.autoscaling"], []string{"v1"}) {
		t.Errorf("resource_versions %v", info.ResourceVersions)
	}
	if res.Info.TotalItems != len(btItems(nodes, "/resources/namespaces/"+ns))+len(btItems(nodes, "/resources/cluster")) {
		t.Errorf("copies at other versions counted as items: %d", res.Info.TotalItems)
	}
}
