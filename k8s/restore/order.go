package restore

import (
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/k8s/layout"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// restorePriorities are restored first, in this order, each a stage of its
// own: what later objects refer to or live in comes before them. Everything
// else follows, one stage per resource, ordered by "<resource>.<group>".
var restorePriorities = []schema.GroupResource{
	{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"},
	{Resource: "namespaces"},
	{Group: "storage.k8s.io", Resource: "storageclasses"},
	{Resource: "persistentvolumes"},
	{Resource: "persistentvolumeclaims"},
	{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
	{Group: "rbac.authorization.k8s.io", Resource: "roles"},
	{Resource: "serviceaccounts"},
	{Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"},
	{Group: "rbac.authorization.k8s.io", Resource: "rolebindings"},
	{Resource: "secrets"},
	{Resource: "configmaps"},
	{Resource: "limitranges"},
	{Group: "scheduling.k8s.io", Resource: "priorityclasses"},
	{Resource: "pods"},
	{Group: "apps", Resource: "replicasets"},
	{Resource: "endpoints"},
	{Resource: "services"},
}

// restoreLast are restored after everything else, in this order: admission
// control. Restored earlier, a webhook whose service does not run yet (it
// is being restored too, or its pods are still starting) would reject the
// objects restored after it, and a policy would judge them.
var restoreLast = []schema.GroupResource{
	{Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicies"},
	{Group: "admissionregistration.k8s.io", Resource: "mutatingadmissionpolicies"},
	{Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicybindings"},
	{Group: "admissionregistration.k8s.io", Resource: "mutatingadmissionpolicybindings"},
	{Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"},
	{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"},
}

// Well-known resources the transforms and the planner look at.
var (
	grCRD          = restorePriorities[0]
	grNamespace    = restorePriorities[1]
	grStorageClass = restorePriorities[2]
	grPV           = restorePriorities[3]
	grPVC          = restorePriorities[4]
	grServiceAcct  = restorePriorities[7]
	grSecret       = restorePriorities[10]
	grConfigMap    = restorePriorities[11]
	grPod          = restorePriorities[14]
	grService      = restorePriorities[17]
	grJob          = schema.GroupResource{Group: "batch", Resource: "jobs"}
	grCronJob      = schema.GroupResource{Group: "batch", Resource: "cronjobs"}

	grClusterTrustBundle = schema.GroupResource{Group: "certificates.k8s.io", Resource: "clustertrustbundles"}
	grEndpointSlice      = schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}
)

// grString is the "<resource>.<group>" spelling used in the snapshot and in
// reports ("configmaps", "deployments.apps").
func grString(gr schema.GroupResource) string { return layout.ResourceDir(gr.Resource, gr.Group) }

// restoreRank is gr's position among the priorities, len(priorities) for
// the rest, and above that for those restored last.
func restoreRank(gr schema.GroupResource) int {
	if i := slices.Index(restorePriorities, gr); i >= 0 {
		return i
	}
	if i := slices.Index(restoreLast, gr); i >= 0 {
		return len(restorePriorities) + 1 + i
	}
	return len(restorePriorities)
}

// compareRestoreOrder orders resources as they are restored.
func compareRestoreOrder(a, b schema.GroupResource) int {
	if ra, rb := restoreRank(a), restoreRank(b); ra != rb {
		return ra - rb
	}
	return strings.Compare(grString(a), grString(b))
}

// RestoreStages sorts the resources (duplicates removed) into the order in
// which they are restored; each is one stage.
func RestoreStages(grs []schema.GroupResource) []schema.GroupResource {
	out := slices.Clone(grs)
	slices.SortFunc(out, compareRestoreOrder)
	return slices.Compact(out)
}

// neverRestored are resources whose objects describe a cluster's running
// state rather than its desired state; restoring them would be wrong or
// pointless (they are recreated by the cluster). The value says why.
var neverRestored = map[schema.GroupResource]string{
	{Resource: "nodes"}:                                                    "nodes belong to the cluster they ran in",
	{Resource: "events"}:                                                   "events are not restored",
	{Group: "events.k8s.io", Resource: "events"}:                           "events are not restored",
	{Resource: "componentstatuses"}:                                        "component status is computed by the API server",
	{Resource: "bindings"}:                                                 "bindings are not objects",
	{Group: "coordination.k8s.io", Resource: "leases"}:                     "leases record liveness, not configuration",
	{Group: "storage.k8s.io", Resource: "csinodes"}:                        "CSI nodes belong to nodes",
	{Group: "storage.k8s.io", Resource: "volumeattachments"}:               "volume attachments belong to nodes",
	{Group: "metrics.k8s.io", Resource: "pods"}:                            "metrics are not objects",
	{Group: "metrics.k8s.io", Resource: "nodes"}:                           "metrics are not objects",
	{Group: "certificates.k8s.io", Resource: "certificatesigningrequests"}: "certificate requests belong to the old cluster's nodes and users",
	{Group: "certificates.k8s.io", Resource: "podcertificaterequests"}:     "pod certificate requests belong to the old cluster's nodes",
	{Group: "authentication.k8s.io", Resource: "tokenreviews"}:             "reviews are not stored",
	{Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}:      "reviews are not stored",
}

// neverRestoredNamespaces hold only objects the cluster makes itself.
var neverRestoredNamespaces = map[string]string{
	"kube-node-lease": "kube-node-lease holds node heartbeats",
}

// neverRestoreReason says why objects of gr in namespace ns are never
// restored, or "" when they may be.
func neverRestoreReason(gr schema.GroupResource, ns string) string {
	if why, ok := neverRestored[gr]; ok {
		return why
	}
	if why, ok := neverRestoredNamespaces[ns]; ok {
		return why
	}
	return ""
}

// CompareRestoreOrder orders "<resource>.<group>" names as they are
// restored.
func CompareRestoreOrder(a, b string) int { return compareRestoreOrder(splitGR(a), splitGR(b)) }
