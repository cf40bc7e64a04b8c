package restore

import (
	"context"
	"testing"

	"github.com/cairn-backup/cairn/k8s/backup"
	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/layout"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestRestoreOfBackup restores what backup.Backup saved: the two halves agree on
// the snapshot layout.
func TestRestoreOfBackup(t *testing.T) {
	cl := rtConnect(t)
	ctx := context.Background()
	rtApply(t, cl, `
apiVersion: v1
kind: Namespace
metadata: {name: rt-e2e}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: rt-e2e, labels: {app: e2e}}
data: {mode: production}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: rt-e2e}
stringData: {password: hunter2}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: rt-e2e}
spec:
  replicas: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "registry.old/team/web:1.0"}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: rt-e2e}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80}]
`)
	rtCleanup(t, cl, "rt-e2e", "rt-e2e-copy")
	r := rtRepo(t)
	if _, err := backup.Backup(ctx, cl, r, backup.BackupOptions{Name: "e2e", Spec: layout.BackupSpec{IncludeNamespaces: []string{"rt-e2e"}}}); err != nil {
		t.Fatalf("backup: %v", err)
	}
	sn, err := catalog.ResolveBackup(ctx, r, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	images, _ := ParseImageMappings([]string{"registry.old/team:mirror.new/team"})
	res := rtRestore(t, r, sn, cl, RestoreOptions{
		NamespaceMappings: map[string]string{"rt-e2e": "rt-e2e-copy"}, ImageMappings: images,
	})
	if res.Phase != layout.PhaseCompleted || res.Backup != "e2e" {
		t.Fatalf("phase %s of backup %q", res.Phase, res.Backup)
	}
	items := rtItems(res)
	for _, k := range []string{"namespaces rt-e2e-copy", "configmaps rt-e2e-copy/settings", "secrets rt-e2e-copy/creds",
		"deployments.apps rt-e2e-copy/web", "services rt-e2e-copy/web"} {
		rtWantAction(t, items, k, ActionCreated)
	}
	for _, c := range []struct {
		gvr  schema.GroupVersionResource
		name string
	}{{gvrConfigMap, "settings"}, {gvrSecret, "creds"}, {gvrService, "web"}} {
		orig := rtGet(t, cl, c.gvr, "rt-e2e", c.name)
		cp := rtGet(t, cl, c.gvr, "rt-e2e-copy", c.name)
		if cp == nil {
			t.Errorf("%s %s not restored", c.gvr.Resource, c.name)
			continue
		}
		orig.SetNamespace("rt-e2e-copy")
		rtEqual(t, c.gvr.Resource+"/"+c.name, c.gvr.GroupResource(), orig, cp)
	}
	dep := rtGet(t, cl, gvrDeployment, "rt-e2e-copy", "web")
	containers, _, _ := unstructuredSlice(dep.Object, "spec", "template", "spec", "containers")
	if img := containers[0].(map[string]any)["image"]; img != "mirror.new/team/web:1.0" {
		t.Errorf("image %v", img)
	}
}
