package backup

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

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

const btNeeds = `
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: bt-pc-SFX}
value: 1000
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: bt-needs-sc-SFX}
provisioner: example.com/none
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: bt-needs-pv-SFX}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: bt-needs-sc-SFX
  hostPath: {path: /tmp/bt-needs-SFX}
  claimRef: {namespace: NS, name: web-data}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: web-data}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: bt-needs-sc-SFX
  volumeName: bt-needs-pv-SFX
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: unused}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app-sa}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: other-sa}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: bt-cr-SFX}
rules: [{apiGroups: [""], resources: [nodes], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: bt-cr-unused-SFX}
rules: [{apiGroups: [""], resources: [nodes], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bt-crb-SFX}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: bt-cr-SFX}
subjects: [{kind: ServiceAccount, name: app-sa, namespace: NS}, {kind: User, name: someone}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bt-crb-other-SFX}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: bt-cr-unused-SFX}
subjects: [{kind: ServiceAccount, name: other-sa, namespace: NS}, {kind: ServiceAccount, name: app-sa, namespace: elsewhere}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  serviceAccountName: app-sa
  priorityClassName: bt-pc-SFX
  containers: [{name: c, image: busybox:1.36}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: web-data}}]
`

// TestBackupNeeds: a namespace backup whose -l selector picks only a pod
// takes in its claim (and the claim's volume and class), its service
// account, the ClusterRoleBinding of that account and its ClusterRole, and
// its PriorityClass, each logged with the object that needed it; with
// --include-cluster-resources=false only the namespaced ones.
func TestBackupNeeds(t *testing.T) {
	cl := btClients(t, 0)
	ctx := context.Background()
	ns := btNamespace(t, cl, "bt-needs", nil)
	sfx := btSuffix()
	btApply(t, cl, ns, sfx, btNeeds)
	r, _ := btRepo(t)

	var log []string
	res, err := Backup(ctx, cl, r, BackupOptions{Name: "needs", Spec: layout.BackupSpec{IncludeNamespaces: []string{ns}, Selector: "app=web"},
		Log: func(l string) { log = append(log, l) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Info.Phase != layout.PhaseCompleted {
		t.Fatalf("phase %s: %v", res.Info.Phase, res.Info.Errors)
	}
	nodes := btTree(t, r, res.Snapshot)
	wantNS := []string{"persistentvolumeclaims/web-data", "pods/web", "serviceaccounts/app-sa"}
	if got := btItems(nodes, "/resources/namespaces/"+ns); !slices.Equal(got, wantNS) {
		t.Errorf("namespaced items\n%v\nwant\n%v", got, wantNS)
	}
	wantCluster := []string{
		"clusterrolebindings.rbac.authorization.k8s.io/bt-crb-" + sfx,
		"clusterroles.rbac.authorization.k8s.io/bt-cr-" + sfx,
		"namespaces/" + ns,
		"persistentvolumes/bt-needs-pv-" + sfx,
		"priorityclasses.scheduling.k8s.io/bt-pc-" + sfx,
		"storageclasses.storage.k8s.io/bt-needs-sc-" + sfx,
	}
	if got := btItems(nodes, "/resources/cluster"); !slices.Equal(got, wantCluster) {
		t.Errorf("cluster items\n%v\nwant\n%v", got, wantCluster)
	}
	all := strings.Join(log, "\n")
	for _, want := range []string{
		"persistentvolumeclaims/" + ns + "/web-data added: needed by pods " + ns + "/web",
		"serviceaccounts/" + ns + "/app-sa added: needed by pods " + ns + "/web",
		"persistentvolumes/bt-needs-pv-" + sfx + " added: needed by persistentvolumeclaims " + ns + "/web-data",
		"clusterrolebindings.rbac.authorization.k8s.io/bt-crb-" + sfx + " added: needed by binding of ServiceAccount " + ns + "/app-sa",
		"clusterroles.rbac.authorization.k8s.io/bt-cr-" + sfx + " added: needed by clusterrolebindings.rbac.authorization.k8s.io bt-crb-" + sfx,
		"priorityclasses.scheduling.k8s.io/bt-pc-" + sfx + " added: needed by pods " + ns + "/web",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %q:\n%s", want, all)
		}
	}

	// Without the selector every service account is in: other-sa's
	// binding comes too, not the one of app-sa in another namespace.
	res, err = Backup(ctx, cl, r, BackupOptions{Name: "needs-all", Spec: layout.BackupSpec{IncludeNamespaces: []string{ns}}})
	if err != nil {
		t.Fatal(err)
	}
	cluster := btItems(btTree(t, r, res.Snapshot), "/resources/cluster")
	for _, want := range []string{"clusterrolebindings.rbac.authorization.k8s.io/bt-crb-other-" + sfx, "clusterroles.rbac.authorization.k8s.io/bt-cr-unused-" + sfx} {
		if !slices.Contains(cluster, want) {
			t.Errorf("%s missing from %v", want, cluster)
		}
	}

	// --include-cluster-resources=false wins over the needs.
	no := false
	res, err = Backup(ctx, cl, r, BackupOptions{Name: "needs-none", Spec: layout.BackupSpec{IncludeNamespaces: []string{ns}, Selector: "app=web", IncludeClusterResources: &no}})
	if err != nil {
		t.Fatal(err)
	}
	nodes = btTree(t, r, res.Snapshot)
	if got := btItems(nodes, "/resources/cluster"); !slices.Equal(got, []string{"namespaces/" + ns}) {
		t.Errorf("cluster items with --include-cluster-resources=false: %v", got)
	}
	if got := btItems(nodes, "/resources/namespaces/"+ns); !slices.Equal(got, wantNS) {
		t.Errorf("namespaced items with --include-cluster-resources=false\n%v\nwant\n%v", got, wantNS)
	}
}

// TestBackupNamespaceBeingDeleted: a namespace held in deletion by an
// object's finalizer is left out with that object.
func TestBackupNamespaceBeingDeleted(t *testing.T) {
	cl := btClients(t, 0)
	ctx := context.Background()
	ns := btNamespace(t, cl, "bt-dying", nil)
	btApply(t, cl, ns, btSuffix(), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [example.com/hold]}\n")
	cms := cl.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(ns)
	t.Cleanup(func() {
		cms.Patch(context.Background(), "held", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
	nsGVR := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	if err := cl.Dynamic.Resource(nsGVR).Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	sas := cl.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}).Namespace(ns)
	btWaitFor(t, 60*time.Second, "the namespace's objects deleted or held", func() bool {
		// The namespace controller deletes resource by resource: the
		// default ServiceAccount may outlive the config maps a while.
		if l, err := sas.List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) > 0 {
			return false
		}
		l, err := cms.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, cm := range l.Items {
			if cm.GetDeletionTimestamp() == nil {
				return false
			}
		}
		return len(l.Items) == 1
	})

	r, _ := btRepo(t)
	var log []string
	res, err := Backup(ctx, cl, r, BackupOptions{Name: "dying", Spec: layout.BackupSpec{IncludeNamespaces: []string{ns}},
		Log: func(l string) { log = append(log, l) }})
	if err != nil {
		t.Fatal(err)
	}
	nodes := btTree(t, r, res.Snapshot)
	if got := btItems(nodes, "/resources/namespaces/"+ns); len(got) > 0 {
		t.Errorf("objects of a namespace being deleted backed up: %v", got)
	}
	if got := btItems(nodes, "/resources/cluster"); slices.Contains(got, "namespaces/"+ns) {
		t.Errorf("namespace being deleted backed up: %v", got)
	}
	if all := strings.Join(log, "\n"); !strings.Contains(all, "namespace "+ns+" is being deleted: not backed up") {
		t.Errorf("log lacks the namespace's line:\n%s", all)
	}
}
