package restore

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/layout"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The "kinds" tests (prefixed kt) back up a namespace holding most kinds a
// real application uses, written the way Kubernetes' documentation writes
// its examples (no namespace in the manifests: they are applied with one,
// server-side, as `kubectl apply --server-side -n` does), and restore it in
// place, under another name and into another cluster.

// TestKinds backs up a namespace holding most kinds of objects, and the
// whole cluster; deletes the namespace and the cluster-scoped objects it
// pulled in and restores them; restores the namespace under another name
// next to the original; and restores both backups into a new cluster.
func TestKinds(t *testing.T) {
	cl := rtConnect(t)
	ctx := context.Background()
	applied := ktSetup(t, cl)
	policy := ktApply(t, cl, "", ktPolicyYAML)
	t.Cleanup(func() {
		for _, p := range policy {
			_ = cl.Dynamic.Resource(p.gvr).Delete(context.Background(), p.obj.GetName(), metav1.DeleteOptions{})
		}
	})
	r := rtRepo(t)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	nsSnap := ktBackup(t, cl, r, "kinds", layout.BackupSpec{IncludeNamespaces: []string{ktNS}})
	// The webhook is only in the backup of the whole cluster: here it
	// would block the restores into the namespace.
	webhook := ktApply(t, cl, "", ktWebhookYAML)[0]
	allSnap := ktBackup(t, cl, r, "everything", layout.BackupSpec{})
	rtDeleteAndWait(t, cl, rtRef{gvr: webhook.gvr, name: webhook.obj.GetName()})
	backed := ktRead(t, r, nsSnap)
	for _, a := range applied {
		if backed[a.key()] == nil {
			t.Errorf("%s is not in the backup", a.key())
		}
	}
	for _, want := range []string{"replicasets.apps " + ktNS, "pods " + ktNS, "controllerrevisions.apps " + ktNS, "persistentvolumeclaims " + ktNS + "/data-sessions-0"} {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(backed)), func(k string) bool { return strings.HasPrefix(k, want) }) {
			t.Errorf("no %s… in the backup", want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Run("in-place", func(t *testing.T) {
		rtDeleteAndWait(t, cl, append([]rtRef{{gvr: gvrNamespace, name: ktNS}}, ktClusterObjects...)...)
		res := rtRestore(t, r, nsSnap, cl, RestoreOptions{Name: "kinds-back"})
		ktSummary(t, res)
		if res.Phase != layout.PhaseCompleted {
			t.Fatalf("phase %s: %v", res.Phase, res.Errors)
		}
		ktWantRestored(t, res, backed, ktNS, nil)
		ktWantRestored(t, res, backed, "", nil)
		ktCompare(t, cl, applied, backed, nil)
		ktCheckControllers(t, cl, ktNS)
		ktWantToken(t, cl, ktNS, backed)
	})

	t.Run("mapped", func(t *testing.T) {
		copyNS := ktNS + "-copy"
		m := map[string]string{ktNS: copyNS}
		before := rtGet(t, cl, gvrConfigMap, ktNS, "storefront-config")
		res := rtRestore(t, r, nsSnap, cl, RestoreOptions{Name: "kinds-copy", NamespaceMappings: m})
		ktSummary(t, res)
		if res.Phase != layout.PhaseCompleted {
			t.Fatalf("phase %s: %v", res.Phase, res.Errors)
		}
		ktWantRestored(t, res, backed, ktNS, m)
		items := rtItems(res)
		var inNS []ktApplied
		for _, a := range applied {
			if a.obj.GetNamespace() == "" && a.gvr.GroupResource() != grNamespace {
				rtWantAction(t, items, a.key(), ActionSkippedExists)
			} else {
				inNS = append(inNS, a)
			}
		}
		ktCompare(t, cl, inNS, backed, m)
		ktCheckControllers(t, cl, copyNS)
		// The original is untouched.
		if after := rtGet(t, cl, gvrConfigMap, ktNS, "storefront-config"); after == nil || after.GetResourceVersion() != before.GetResourceVersion() {
			t.Errorf("the original changed: %v", after)
		}
	})

	t.Run("migration", func(t *testing.T) {
		b := ktStartCluster(t)
		// The new cluster's platform gives pods without a class a
		// default priority: the restored pods' priorities, computed in
		// the old cluster, are not the new cluster's.
		ktApply(t, b, "", `
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: kt-platform-default
value: 1000
globalDefault: true
description: "Default for workloads without a class."
`)
		existing := ktInventory(t, b)
		caBefore := rtGet(t, b, gvrConfigMap, "kube-system", "kube-root-ca.crt")

		// The whole cluster into the new one.
		res := rtRestore(t, r, allSnap, b, RestoreOptions{Name: "kinds-migrate"})
		ktSummary(t, res)
		if res.Phase != layout.PhaseCompleted {
			t.Errorf("phase %s", res.Phase)
		}
		items := rtItems(res)
		for _, it := range res.Items {
			k := it.Resource + " " + path.Join(it.Namespace, it.Name)
			switch {
			case it.Action == ActionFailed:
			case it.Resource == grString(grAPIService) && it.Action == ActionSkipped: // automanaged: never restored
			case existing[k] && it.Action != ActionSkippedExists:
				t.Errorf("%s existed in the new cluster and was %s", k, it.Action)
			case existing[k]:
				o := rtGet(t, b, schema.GroupVersionResource{Group: splitGR(it.Resource).Group, Version: ktVersion(t, b, it.Resource), Resource: splitGR(it.Resource).Resource}, it.Namespace, it.Name)
				if o != nil && o.GetLabels()[layout.LabelRestoreName] != "" {
					t.Errorf("%s existed in the new cluster and was overwritten", k)
				}
			}
		}
		for _, k := range []string{"namespaces default", "namespaces kube-system", "namespaces kube-public",
			"serviceaccounts default/default", "serviceaccounts kube-system/default", "configmaps kube-system/kube-root-ca.crt",
			"configmaps kube-system/extension-apiserver-authentication", "services default/kubernetes",
			"clusterroles.rbac.authorization.k8s.io cluster-admin", "clusterroles.rbac.authorization.k8s.io admin",
			"clusterrolebindings.rbac.authorization.k8s.io cluster-admin",
			"priorityclasses.scheduling.k8s.io system-node-critical"} {
			rtWantAction(t, items, k, ActionSkippedExists)
		}
		rtWantAction(t, items, "apiservices.apiregistration.k8s.io v1.apps", ActionSkipped)
		if ca := rtGet(t, b, gvrConfigMap, "kube-system", "kube-root-ca.crt"); ca.GetResourceVersion() != caBefore.GetResourceVersion() {
			t.Errorf("the new cluster's root CA config map was changed")
		}
		ktWantRestored(t, res, backed, ktNS, nil)
		ktCompare(t, b, applied, backed, nil)
		for _, p := range append(policy, webhook) {
			rtWantAction(t, items, p.key(), ActionCreated)
		}
		ktCheckControllers(t, b, ktNS)
		ktWantToken(t, b, ktNS, backed)
		for _, it := range res.Items {
			if it.Resource == grString(grClusterTrustBundle) && it.Action == ActionCreated {
				t.Errorf("the old cluster's trust bundle %s was restored", it.Name)
			}
		}
		// The webhook's service does not run here; let the next restore in.
		rtDeleteAndWait(t, b, rtRef{gvr: webhook.gvr, name: webhook.obj.GetName()})

		// The namespace backup, next to it under another name: the
		// cluster-scoped objects it needs are there now.
		moved := ktNS + "-moved"
		m := map[string]string{ktNS: moved}
		res = rtRestore(t, r, nsSnap, b, RestoreOptions{Name: "kinds-moved", NamespaceMappings: m})
		ktSummary(t, res)
		if res.Phase != layout.PhaseCompleted {
			t.Errorf("phase %s", res.Phase)
		}
		ktWantRestored(t, res, backed, ktNS, m)
		var inNS []ktApplied
		for _, a := range applied {
			if a.obj.GetNamespace() != "" || a.gvr.GroupResource() == grNamespace {
				inNS = append(inNS, a)
			}
		}
		ktCompare(t, b, inNS, backed, m)
	})
}

func TestMadeByRestoredOwner(t *testing.T) {
	owners := map[ownerKey]bool{{grJob, "ns", "migrate"}: true, {grCronJob, "ns", "report"}: true}
	item := func(gr schema.GroupResource, ns, owner string) *restoreItem {
		o := obj(t, "metadata: {name: x, namespace: "+ns+", "+owner+"}")
		return &restoreItem{m: Manifest{Namespace: ns, Name: "x"}, gr: gr, src: o}
	}
	ref := func(apiVersion, kind, name string, controller bool) string {
		return fmt.Sprintf("ownerReferences: [{apiVersion: %q, kind: %s, name: %s, uid: u, controller: %v}]", apiVersion, kind, name, controller)
	}
	for _, c := range []struct {
		it   *restoreItem
		want bool
	}{
		{item(grPod, "ns", ref("batch/v1", "Job", "migrate", true)), true},
		{item(grPod, "other", ref("batch/v1", "Job", "migrate", true)), false}, // that Job is not restored
		{item(grPod, "ns", ref("batch/v1", "Job", "other", true)), false},
		{item(grPod, "ns", ref("batch/v1", "Job", "migrate", false)), false}, // not its controller
		{item(grPod, "ns", ref("example.com/v1", "Job", "migrate", true)), false},
		{item(grPod, "ns", ref("apps/v1", "ReplicaSet", "migrate", true)), false}, // adopted by its ReplicaSet
		{item(grPod, "ns", "labels: {}"), false},
		{item(grJob, "ns", ref("batch/v1", "CronJob", "report", true)), true},
		{item(grJob, "ns", ref("batch/v1", "CronJob", "migrate", true)), false},
		{item(grConfigMap, "ns", ref("batch/v1", "Job", "migrate", true)), false},
	} {
		if got := madeByRestoredOwner(c.it, owners); got != c.want {
			t.Errorf("%s with %v: %v, want %v", c.it.gr, c.it.src.GetOwnerReferences(), got, c.want)
		}
	}
}
