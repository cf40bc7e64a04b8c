package restore

import (
	"strings"

	"github.com/cairn-backup/cairn/k8s/kube"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var grAPIService = schema.GroupResource{Group: "apiregistration.k8s.io", Resource: "apiservices"}

// skipRules are the restore options skipRuleReason follows.
type skipRules struct {
	IncludeFinished        bool // restore completed Jobs and finished pods
	IncludeBootstrapTokens bool // restore bootstrap-token Secrets
}

// skipRuleReason says why a backed-up object is not restored, judged by
// its content, or "" when it is restored. It is the one place for such
// rules (neverRestoreReason judges whole resources by name); the restore
// applies it before it adds namespaces and dependencies, so that nothing
// is created only for an object that is skipped.
func skipRuleReason(gr schema.GroupResource, obj *unstructured.Unstructured, rules skipRules) string {
	switch gr {
	case grPod:
		// The kubelet makes a mirror pod for each static pod of its node;
		// the API server refuses to create one by hand.
		if _, ok := obj.GetAnnotations()["kubernetes.io/config.mirror"]; ok {
			return "mirror pod of a static pod: its node's kubelet makes it"
		}
		phase, _, _ := unstructured.NestedString(obj.Object, "status", "phase")
		if (phase == "Succeeded" || phase == "Failed") && !rules.IncludeFinished {
			return "pod finished (" + phase + "); restored it would run again (--include-finished restores it)"
		}
	case grJob:
		if jobFinished(obj) && !rules.IncludeFinished {
			return "job finished; restored it would run again (--include-finished restores it)"
		}
	case grAPIService:
		// The aggregator makes these for every built-in group version;
		// restored into another Kubernetes version they may name versions
		// it does not serve and break discovery for every client.
		if _, ok := obj.GetLabels()["kube-aggregator.kubernetes.io/automanaged"]; ok {
			return "made by the target's API server for its own groups"
		}
	case grSecret:
		if t, _, _ := unstructured.NestedString(obj.Object, "type"); t == "bootstrap.kubernetes.io/token" && !rules.IncludeBootstrapTokens {
			return "bootstrap token: it would let nodes join the target cluster (--include-bootstrap-tokens restores it)"
		}
	case grEndpointSlice:
		// Older backups hold them; the target's controllers make their own.
		return kube.ClusterEndpointSlice(obj.GetNamespace(), obj.GetLabels())
	case grClusterTrustBundle:
		// The bundles of the built-in signers (kube-apiserver-serving, …)
		// are published by the cluster and hold its own CA certificates;
		// their names hash the content, so another cluster's would be
		// added beside its own, not found existing.
		if s, _, _ := unstructured.NestedString(obj.Object, "spec", "signerName"); strings.HasPrefix(s, "kubernetes.io/") {
			return "trust bundles of the kubernetes.io signers hold the old cluster's certificate authorities"
		}
	}
	return ""
}

// jobFinished reports a Job that completed or failed for good.
func jobFinished(obj *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if (m["type"] == "Complete" || m["type"] == "Failed") && m["status"] == "True" {
			return true
		}
	}
	succeeded, _, _ := unstructured.NestedInt64(obj.Object, "status", "succeeded")
	done, _, _ := unstructured.NestedString(obj.Object, "status", "completionTime")
	return succeeded > 0 && done != ""
}
