package backup

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/snapshot"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestBackupWholeCluster(t *testing.T) {
	cl := btClients(t, 0)
	ctx := context.Background()
	app := btNamespace(t, cl, "bt-all", nil)
	hidden := btNamespace(t, cl, "bt-hidden", map[string]string{layout.LabelExclude: "true"})
	sfx := btSuffix()
	btApply(t, cl, app, sfx, `
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: app-lock}
spec: {holderIdentity: me}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {selector: {app: x}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Event
metadata: {name: ev}
involvedObject: {kind: ConfigMap, name: cm, namespace: NS}
reason: Testing
---
apiVersion: v1
kind: Node
metadata: {name: bt-node-SFX}
`)
	btApply(t, cl, hidden, sfx, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: secret-cm}\n")
	btApply(t, cl, "kube-node-lease", sfx, "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: bt-node-SFX}\nspec: {holderIdentity: bt-node-SFX}\n")
	t.Cleanup(func() {
		gvr := schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}
		cl.Dynamic.Resource(gvr).Namespace("kube-node-lease").Delete(context.Background(), "bt-node-"+sfx, metav1.DeleteOptions{})
	})
	esGVR := schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
	btWaitFor(t, 30*time.Second, "an endpoint slice for svc", func() bool {
		l, err := cl.Dynamic.Resource(esGVR).Namespace(app).List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) > 0
	})

	r, _ := btRepo(t)
	var logLines []string
	var mu sync.Mutex
	res, err := Backup(ctx, cl, r, BackupOptions{Name: "all", Cluster: "prod", PageSize: 7, Log: func(l string) {
		mu.Lock()
		logLines = append(logLines, l)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Info.Phase != layout.PhaseCompleted {
		t.Fatalf("phase %s: %v", res.Info.Phase, res.Info.Errors)
	}
	if res.Snapshot.Hostname != "prod" || res.Info.Cluster != "prod" || res.Info.Expires != nil ||
		slices.ContainsFunc(res.Snapshot.Tags, func(s string) bool { return retention.IsExpiryTag(s) }) {
		t.Errorf("cluster name or expiry wrong: %+v", res.Snapshot)
	}
	nodes := btTree(t, r, res.Snapshot)
	cluster := btItems(nodes, "/resources/cluster")
	for _, want := range []string{"clusterroles.rbac.authorization.k8s.io/admin", "clusterroles.rbac.authorization.k8s.io/view",
		"namespaces/default", "namespaces/kube-system", "namespaces/" + app, "apiservices.apiregistration.k8s.io/v1.apps"} {
		if !slices.Contains(cluster, want) {
			t.Errorf("%s missing", want)
		}
	}
	for _, not := range []string{"namespaces/" + hidden, "nodes/bt-node-" + sfx} {
		if slices.Contains(cluster, not) {
			t.Errorf("%s backed up", not)
		}
	}
	appItems := btItems(nodes, "/resources/namespaces/"+app)
	for _, want := range []string{"configmaps/cm", "leases.coordination.k8s.io/app-lock", "services/svc"} {
		if !slices.Contains(appItems, want) {
			t.Errorf("%s missing from %v", want, appItems)
		}
	}
	all := 0
	for p, n := range nodes {
		if n.Type == snapshot.NodeFile && strings.HasPrefix(p, "/resources/") {
			all++
		}
		for _, never := range []string{"/events/", "/events.events.k8s.io/", "/endpointslices.discovery.k8s.io/", "/nodes/", "/namespaces/" + hidden, "/namespaces/kube-node-lease/leases"} {
			if strings.Contains(p, never) {
				t.Errorf("%s backed up", p)
			}
		}
	}
	if all != res.Info.TotalItems || res.Info.Items["clusterroles.rbac.authorization.k8s.io"] < 50 {
		t.Errorf("%d manifests, total %d, items %s", all, res.Info.TotalItems, btKeys(res.Info.Items))
	}
	// With pages of 7, more than 7 cluster roles were read.
	if !slices.ContainsFunc(logLines, func(l string) bool { return strings.Contains(l, "skipping events: events are transient") }) ||
		!slices.ContainsFunc(logLines, func(l string) bool { return strings.Contains(l, "labelled cairn.io/exclude-from-backup=true") }) {
		t.Errorf("log lacks skip lines:\n%s", strings.Join(logLines, "\n"))
	}
}

// TestBackupPartiallyFailed breaks discovery of one group (an APIService
// whose service does not exist) and the list of one resource (a CRD whose
// preferred version needs a conversion webhook that does not exist).
func TestBackupPartiallyFailed(t *testing.T) {
	cl := btClients(t, 0)
	ctx := context.Background()
	ns := btNamespace(t, cl, "bt-partial", nil)
	sfx := btSuffix()
	group := "bt" + sfx + ".broken.example.com"
	btApply(t, cl, ns, sfx, `
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1.btSFX.broken.example.com}
spec:
  group: btSFX.broken.example.com
  version: v1
  groupPriorityMinimum: 100
  versionPriority: 10
  insecureSkipTLSVerify: true
  service: {namespace: default, name: does-not-exist}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.btSFX.conv.example.com}
spec:
  group: btSFX.conv.example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  conversion:
    strategy: Webhook
    webhook:
      conversionReviewVersions: [v1]
      clientConfig: {service: {namespace: default, name: no-such-converter, path: /convert}}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
  - {name: v2, served: true, storage: false, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: fine}
`)
	crd := "gadgets.bt" + sfx + ".conv.example.com"
	btWaitCRD(t, cl, crd)
	gadgets := schema.GroupVersionResource{Group: "bt" + sfx + ".conv.example.com", Version: "v1", Resource: "gadgets"}
	g := &unstructured.Unstructured{Object: map[string]any{"apiVersion": gadgets.GroupVersion().String(), "kind": "Gadget", "metadata": map[string]any{"name": "g1"}}}
	if _, err := cl.Dynamic.Resource(gadgets).Namespace(ns).Create(ctx, g, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Delete the object at the storage version before its CRD goes.
	t.Cleanup(func() {
		cl.Dynamic.Resource(gadgets).Namespace(ns).Delete(context.Background(), "g1", metav1.DeleteOptions{})
	})
	btWaitFor(t, 30*time.Second, "discovery of "+group+" to fail", func() bool {
		d, err := kube.Discover(ctx, cl.Discovery)
		return err == nil && d.Failed[group+"/v1"] != nil
	})

	r, _ := btRepo(t)
	res, err := Backup(ctx, cl, r, BackupOptions{Name: "partial", Spec: layout.BackupSpec{IncludeNamespaces: []string{ns}}})
	if err != nil {
		t.Fatal(err)
	}
	info := res.Info
	errs := strings.Join(info.Errors, "\n")
	if info.Phase != layout.PhasePartiallyFailed || len(info.Errors) != 2 ||
		!strings.Contains(errs, "discovery of "+group+"/v1 failed") || !strings.Contains(errs, "list "+crd) {
		t.Fatalf("phase %s, errors:\n%s", info.Phase, errs)
	}
	nodes := btTree(t, r, res.Snapshot)
	if nodes[layout.ManifestPath(ns, "configmaps", "", "fine")] == nil {
		t.Error("the rest was not backed up")
	}
	stored, err := catalog.ReadBackupInfo(ctx, r, res.Snapshot)
	if err != nil || stored.Phase != layout.PhasePartiallyFailed || len(stored.Errors) != 2 {
		t.Errorf("backup.json: %+v %v", stored, err)
	}

	// Asking only for resources found elsewhere: the broken group is a
	// warning, the list of gadgets is not attempted.
	res, err = Backup(ctx, cl, r, BackupOptions{Name: "only-cm", Spec: layout.BackupSpec{IncludeNamespaces: []string{ns}, IncludeResources: []string{"configmaps"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Info.Phase != layout.PhaseCompleted || len(res.Info.Warnings) != 1 || !strings.Contains(res.Info.Warnings[0], group) {
		t.Errorf("phase %s, warnings %v, errors %v", res.Info.Phase, res.Info.Warnings, res.Info.Errors)
	}
}

// TestBackupBenchmark backs up 5,000 ConfigMaps in 50 namespaces (set
// CAIRN_BENCH_K8S=1).
func TestBackupBenchmark(t *testing.T) {
	if os.Getenv("CAIRN_BENCH_K8S") != "1" {
		t.Skip("set CAIRN_BENCH_K8S=1 to run")
	}
	cl := btClients(t, 2000)
	ctx := context.Background()
	const namespaces, perNS = 50, 100
	prefix := "bt-bench-" + btSuffix()
	cmGVR := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range namespaces {
		ns := btNamespace(t, cl, fmt.Sprintf("%s-%02d", prefix, i), nil)
		for j := range perNS {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
					"metadata": map[string]any{"name": fmt.Sprintf("cm-%03d", j), "labels": map[string]any{"app": "bench"}},
					"data":     map[string]any{"key": strings.Repeat(fmt.Sprintf("value %d %d ", i, j), 20)}}}
				if _, err := cl.Dynamic.Resource(cmGVR).Namespace(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("created %d ConfigMaps in %s", namespaces*perNS, time.Since(start).Round(time.Millisecond))
	for _, run := range []struct {
		name string
		spec layout.BackupSpec
	}{
		{"bench-ns", layout.BackupSpec{IncludeNamespaces: []string{prefix + "-*"}}},
		{"bench-all", layout.BackupSpec{}},
	} {
		r, _ := btRepo(t)
		start = time.Now()
		res, err := Backup(ctx, btClients(t, 50), r, BackupOptions{Name: run.name, Spec: run.spec})
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		t.Logf("%s: %d objects (%d ConfigMaps) in %s: %.0f objects/s; %s added to the repository",
			run.name, res.Info.TotalItems, res.Info.Items["configmaps"], took.Round(time.Millisecond),
			float64(res.Info.TotalItems)/took.Seconds(), fmtBytes(res.Snapshot.Summary.DataAddedPacked))
		if res.Info.Items["configmaps"] < namespaces*perNS {
			t.Errorf("only %d ConfigMaps", res.Info.Items["configmaps"])
		}
	}
}

func fmtBytes(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
