package restore

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var gvrPod = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// TestRestoreTerminatingNamespace restores right after deleting: the
// restore waits for the old namespace to go.
func TestRestoreTerminatingNamespace(t *testing.T) {
	cl := rtConnect(t)
	rtApply(t, cl, `
apiVersion: v1
kind: Namespace
metadata: {name: rt-term}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c, namespace: rt-term}
data: {k: v}
`)
	rtCleanup(t, cl, "rt-term")
	files := rtLiveFiles(t, cl, []string{"rt-term"}, nil)
	r := rtRepo(t)
	sn := rtWriteBackup(t, r, "rt-term", files)
	if err := cl.Dynamic.Resource(gvrNamespace).Delete(context.Background(), "rt-term", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	res := rtRestore(t, r, sn, cl, RestoreOptions{})
	items := rtItems(res)
	rtWantAction(t, items, "namespaces rt-term", ActionCreated)
	rtWantAction(t, items, "configmaps rt-term/c", ActionCreated)
	if rtGet(t, cl, gvrConfigMap, "rt-term", "c") == nil {
		t.Error("configmap not restored")
	}
	if _, err := Restore(context.Background(), r, sn, cl, RestoreOptions{Name: "not a label!"}); err == nil || !strings.Contains(err.Error(), "restore name") {
		t.Errorf("invalid restore name: %v", err)
	}
}

// TestRestoreEphemeralContainers restores a pod with an ephemeral
// container, which the API adds only through its subresource.
func TestRestoreEphemeralContainers(t *testing.T) {
	cl := rtConnect(t)
	ctx := context.Background()
	rtApply(t, cl, `
apiVersion: v1
kind: Namespace
metadata: {name: rt-eph}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: rt-eph}
spec:
  containers: [{name: app, image: "registry.old/team/app:1"}]
`)
	rtCleanup(t, cl, "rt-eph", "rt-eph-copy")
	pod := rtGet(t, cl, gvrPod, "rt-eph", "p")
	eph := []any{map[string]any{"name": "debug", "image": "registry.old/team/debug:1"}}
	if err := unstructured.SetNestedSlice(pod.Object, eph, "spec", "ephemeralContainers"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Dynamic.Resource(gvrPod).Namespace("rt-eph").Update(ctx, pod, metav1.UpdateOptions{}, "ephemeralcontainers"); err != nil {
		t.Fatal(err)
	}
	files := rtLiveFiles(t, cl, []string{"rt-eph"}, nil)
	r := rtRepo(t)
	sn := rtWriteBackup(t, r, "rt-eph", files)
	images, _ := ParseImageMappings([]string{"registry.old/team:mirror.new/team"})
	res := rtRestore(t, r, sn, cl, RestoreOptions{NamespaceMappings: map[string]string{"rt-eph": "rt-eph-copy"}, ImageMappings: images})
	it := rtItems(res)["pods rt-eph-copy/p"]
	if it.Action != ActionCreated || it.Reason != "" || len(res.Warnings) > 0 {
		t.Errorf("pod: %+v, warnings %q", it, res.Warnings)
	}
	cp := rtGet(t, cl, gvrPod, "rt-eph-copy", "p")
	got, _, _ := unstructured.NestedSlice(cp.Object, "spec", "ephemeralContainers")
	if len(got) != 1 || got[0].(map[string]any)["image"] != "mirror.new/team/debug:1" {
		t.Errorf("ephemeral containers %v", got)
	}
}
