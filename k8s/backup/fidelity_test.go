package backup

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/layout"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// What a namespace backup leaves out and takes in beyond its own objects
// (issue 13): objects being deleted, Velero's exclusion label.

// TestBackupLeavesOut: an object being deleted (held by a finalizer) and
// objects or namespaces labelled with Velero's or cairn's exclusion label
// are not in the backup, and the log says why.
func TestBackupLeavesOut(t *testing.T) {
	cl := btClients(t, 0)
	ctx := context.Background()
	ns := btNamespace(t, cl, "bt-leave", nil)
	veleroNS := btNamespace(t, cl, "bt-velero", map[string]string{LabelVeleroExclude: "true"})
	sfx := btSuffix()
	btApply(t, cl, ns, sfx, `
apiVersion: v1
kind: ConfigMap
metadata: {name: going, finalizers: [example.com/hold]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: staying}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: velero-skip, labels: {velero.io/exclude-from-backup: "true"}}
---
apiVersion: v1
kind: Secret
metadata: {name: cairn-skip, labels: {cairn.io/exclude-from-backup: "true"}}
`)
	btApply(t, cl, veleroNS, sfx, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hidden}\n")
	cms := cl.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(ns)
	release := func() {
		cms.Patch(context.Background(), "going", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	}
	t.Cleanup(release)
	if err := cms.Delete(ctx, "going", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if obj, err := cms.Get(ctx, "going", metav1.GetOptions{}); err != nil || obj.GetDeletionTimestamp() == nil {
		t.Fatalf("the ConfigMap is not held in deletion: %v", err)
	}

	r, _ := btRepo(t)
	var log []string
	res, err := Backup(ctx, cl, r, BackupOptions{Name: "leave", Spec: layout.BackupSpec{IncludeNamespaces: []string{ns, veleroNS}},
		Log: func(l string) { log = append(log, l) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Info.Phase != layout.PhaseCompleted {
		t.Fatalf("phase %s: %v", res.Info.Phase, res.Info.Errors)
	}
	nodes := btTree(t, r, res.Snapshot)
	items := btItems(nodes, "/resources/namespaces/"+ns)
	if !slices.Contains(items, "configmaps/staying") {
		t.Errorf("configmaps/staying missing from %v", items)
	}
	for _, not := range []string{"configmaps/going", "configmaps/velero-skip", "secrets/cairn-skip"} {
		if slices.Contains(items, not) {
			t.Errorf("%s is in the backup", not)
		}
	}
	if got := btItems(nodes, "/resources/namespaces/"+veleroNS); len(got) > 0 {
		t.Errorf("namespace labelled %s=true backed up: %v", LabelVeleroExclude, got)
	}
	if slices.Contains(btItems(nodes, "/resources/cluster"), "namespaces/"+veleroNS) {
		t.Errorf("namespace %s backed up", veleroNS)
	}
	all := strings.Join(log, "\n")
	for _, want := range []string{
		"configmaps in namespace " + ns + ": " + ns + "/going is being deleted",
		"left out: 1 being deleted, 1 labelled velero.io/exclude-from-backup=true",
		"namespace " + veleroNS + " is labelled velero.io/exclude-from-backup=true",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %q:\n%s", want, all)
		}
	}
}
