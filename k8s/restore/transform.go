package restore

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/cairn-backup/cairn/k8s/layout"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
)

// transformConfig is what the transforms need to know about a restore.
type transformConfig struct {
	BackupName, RestoreName string
	Namespaces              map[string]string // old -> new
	StorageClasses          map[string]string // old -> new
	Images                  []ImageMapping
	PreserveNodePorts       bool
	KeepStatus              bool // restore this object's status
	// KeepVolumeName keeps a PVC's spec.volumeName (its PV is restored
	// too); otherwise the claim is provisioned anew.
	KeepVolumeName bool
}

// transformForRestore turns a backed-up object into the object to create
// (whether it is restored at all is skipRuleReason's to say).
func transformForRestore(obj *unstructured.Unstructured, gr schema.GroupResource, c transformConfig) {
	stripMetadata(obj)
	if !c.KeepStatus {
		unstructured.RemoveNestedField(obj.Object, "status")
	}
	switch gr {
	case grService:
		resetServiceAllocations(obj, c.PreserveNodePorts)
	case grPod:
		unstructured.RemoveNestedField(obj.Object, "spec", "nodeName")
		stripRestoreWait(obj)
		// Computed on create from the PriorityClass (or the cluster's
		// default class) and the RuntimeClass; given, they must equal
		// what the target cluster computes (overhead may not be given at
		// all), so they are left to it.
		for _, f := range []string{"priority", "preemptionPolicy", "overhead"} {
			unstructured.RemoveNestedField(obj.Object, "spec", f)
		}
	case grPVC:
		cleanPVC(obj, c.KeepVolumeName)
	case grPV:
		mapClaimRef(obj, c.Namespaces)
	case grSecret:
		cleanTokenSecret(obj)
	case grJob:
		cleanJob(obj)
	}
	mapStorageClass(obj, gr, c.StorageClasses)
	mapImages(obj, gr, c.Images)
	mapNamespace(obj, gr, c.Namespaces)
	addRestoreLabels(obj, c.BackupName, c.RestoreName)
}

// autoCreated reports objects that the cluster makes in every namespace;
// when they exist they are left alone, whatever the existing-resource
// policy.
func autoCreated(gr schema.GroupResource, name string) bool {
	return (gr == grConfigMap && name == "kube-root-ca.crt") || (gr == grServiceAcct && name == "default")
}

// stripMetadata removes what the API server assigns and what points at
// objects of the old cluster. Owner references name old UIDs: kept, they
// would make the garbage collector delete the restored object at once;
// controllers adopt orphans that match their selectors. managedFields stay:
// the apply sets them after the create (see restoreManagedFields), and the
// Service transform reads them.
func stripMetadata(obj *unstructured.Unstructured) {
	for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "generation",
		"selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences"} {
		unstructured.RemoveNestedField(obj.Object, "metadata", f)
	}
}

// resetServiceAllocations clears the cluster IPs (headless "None" stays)
// and the node ports the cluster allocated, so the target cluster
// allocates new ones instead of failing on addresses it may not have.
// Node ports a user set (see explicitNodePorts) are kept: external load
// balancers point at them. preserveNodePorts keeps them all.
func resetServiceAllocations(obj *unstructured.Unstructured, preserveNodePorts bool) {
	if ip, _, _ := unstructured.NestedString(obj.Object, "spec", "clusterIP"); ip != "None" {
		unstructured.RemoveNestedField(obj.Object, "spec", "clusterIP")
		unstructured.RemoveNestedField(obj.Object, "spec", "clusterIPs")
	}
	if preserveNodePorts {
		return
	}
	given := explicitNodePorts(obj)
	if !given.healthCheck {
		unstructured.RemoveNestedField(obj.Object, "spec", "healthCheckNodePort")
	}
	ports, _, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "ports")
	list, _ := ports.([]any)
	for _, p := range list {
		if m, ok := p.(map[string]any); ok && !given.has(m) {
			delete(m, "nodePort")
		}
	}
}

// cleanTokenSecret empties a Secret that holds a ServiceAccount's token
// (since Kubernetes 1.24 only made by hand, for a long-lived token): the
// token was signed by the old cluster and the UID annotation names the old
// ServiceAccount, so that the token controller would delete the Secret.
// Without them, the controller fills in a token of the new cluster.
func cleanTokenSecret(obj *unstructured.Unstructured) {
	if t, _, _ := unstructured.NestedString(obj.Object, "type"); t != "kubernetes.io/service-account-token" {
		return
	}
	for _, k := range []string{"token", "ca.crt", "namespace"} {
		unstructured.RemoveNestedField(obj.Object, "data", k)
	}
	if ann := obj.GetAnnotations(); ann != nil {
		delete(ann, "kubernetes.io/service-account.uid")
		setOrDropAnnotations(obj, ann)
	}
}

// pvcBindingAnnotations are written by the PV controller while binding and
// provisioning in the old cluster.
var pvcBindingAnnotations = []string{
	"pv.kubernetes.io/bind-completed",
	"pv.kubernetes.io/bound-by-controller",
	"volume.beta.kubernetes.io/storage-provisioner",
	"volume.kubernetes.io/storage-provisioner",
	"volume.kubernetes.io/selected-node",
}

// cleanPVC removes binding state; without its PV, the claim also forgets
// the volume's name so that a new volume is provisioned.
func cleanPVC(obj *unstructured.Unstructured, keepVolumeName bool) {
	if ann := obj.GetAnnotations(); ann != nil {
		for _, a := range pvcBindingAnnotations {
			delete(ann, a)
		}
		setOrDropAnnotations(obj, ann)
	}
	if !keepVolumeName {
		unstructured.RemoveNestedField(obj.Object, "spec", "volumeName")
	}
}

func setOrDropAnnotations(obj *unstructured.Unstructured, ann map[string]string) {
	if len(ann) == 0 {
		unstructured.RemoveNestedField(obj.Object, "metadata", "annotations")
		return
	}
	obj.SetAnnotations(ann)
}

// mapClaimRef points a PV's claim reference at the claim's new namespace
// and drops the old claim's UID and version, so that it binds to the
// restored claim.
func mapClaimRef(obj *unstructured.Unstructured, nsMap map[string]string) {
	ref, ok, _ := unstructured.NestedMap(obj.Object, "spec", "claimRef")
	if !ok {
		return
	}
	delete(ref, "uid")
	delete(ref, "resourceVersion")
	if ns, _ := ref["namespace"].(string); ns != "" {
		ref["namespace"] = mapName(nsMap, ns)
	}
	_ = unstructured.SetNestedMap(obj.Object, ref, "spec", "claimRef")
}

// cleanJob drops the selector and the labels the API server generated from
// the old Job's UID; they are generated again on create (a Job with a
// manual selector keeps it).
func cleanJob(obj *unstructured.Unstructured) {
	if manual, _, _ := unstructured.NestedBool(obj.Object, "spec", "manualSelector"); manual {
		return
	}
	unstructured.RemoveNestedField(obj.Object, "spec", "selector")
	labels, ok, _ := unstructured.NestedStringMap(obj.Object, "spec", "template", "metadata", "labels")
	if !ok {
		return
	}
	delete(labels, "controller-uid")
	delete(labels, "batch.kubernetes.io/controller-uid")
	_ = unstructured.SetNestedStringMap(obj.Object, labels, "spec", "template", "metadata", "labels")
}

// mapStorageClass renames the storage class of PVs, PVCs (also the
// deprecated annotation) and StatefulSet volume claim templates.
func mapStorageClass(obj *unstructured.Unstructured, gr schema.GroupResource, m map[string]string) {
	if len(m) == 0 {
		return
	}
	mapField := func(o map[string]any) {
		if sc, ok, _ := unstructured.NestedString(o, "spec", "storageClassName"); ok && sc != "" {
			_ = unstructured.SetNestedField(o, mapName(m, sc), "spec", "storageClassName")
		}
		ann, ok, _ := unstructured.NestedStringMap(o, "metadata", "annotations")
		if sc := ann["volume.beta.kubernetes.io/storage-class"]; ok && sc != "" {
			ann["volume.beta.kubernetes.io/storage-class"] = mapName(m, sc)
			_ = unstructured.SetNestedStringMap(o, ann, "metadata", "annotations")
		}
	}
	switch gr {
	case grPV, grPVC:
		mapField(obj.Object)
	case schema.GroupResource{Group: "apps", Resource: "statefulsets"}:
		tmpls, _, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "volumeClaimTemplates")
		list, _ := tmpls.([]any)
		for _, t := range list {
			if tm, ok := t.(map[string]any); ok {
				mapField(tm)
			}
		}
	}
}

// mapNamespace moves a namespaced object, a Namespace itself and the
// ServiceAccount subjects of (Cluster)RoleBindings to the new namespaces.
func mapNamespace(obj *unstructured.Unstructured, gr schema.GroupResource, m map[string]string) {
	if len(m) == 0 {
		return
	}
	if ns := obj.GetNamespace(); ns != "" {
		obj.SetNamespace(mapName(m, ns))
	}
	switch gr {
	case grNamespace:
		obj.SetName(mapName(m, obj.GetName()))
	case grRoleBinding, grCRB:
		mapSubjects(obj, gr, m) // rbac.go
	}
}

func mapName(m map[string]string, name string) string {
	if n, ok := m[name]; ok {
		return n
	}
	return name
}

// addRestoreLabels marks the object with the backup and restore it came
// from.
func addRestoreLabels(obj *unstructured.Unstructured, backup, restore string) {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	if backup != "" {
		labels[layout.LabelBackupName] = labelValue(backup)
	}
	if restore != "" {
		labels[layout.LabelRestoreName] = labelValue(restore)
	}
	obj.SetLabels(labels)
}

var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// labelValue makes s a valid label value: at most 63 characters of
// [A-Za-z0-9._-], starting and ending alphanumeric.
func labelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	v := labelUnsafe.ReplaceAllString(s, "-")
	if len(v) > validation.LabelValueMaxLength {
		v = v[:validation.LabelValueMaxLength]
	}
	return strings.Trim(v, "-_.")
}

// ParseMappings parses "old:new" pairs (each argument may hold several,
// comma-separated) for --namespace-mappings and --storage-class-mappings.
func ParseMappings(flag string, args []string) (map[string]string, error) {
	m := map[string]string{}
	for _, arg := range args {
		for _, pair := range strings.Split(arg, ",") {
			pair = strings.TrimSpace(pair)
			if pair == "" {
				continue
			}
			from, to, ok := strings.Cut(pair, ":")
			if !ok || from == "" || to == "" || strings.Contains(to, ":") {
				return nil, fmt.Errorf("--%s %q: want OLD:NEW", flag, pair)
			}
			if prev, dup := m[from]; dup && prev != to {
				return nil, fmt.Errorf("--%s maps %q twice (to %q and %q)", flag, from, prev, to)
			}
			m[from] = to
		}
	}
	return m, nil
}

// mergeForUpdate prepares desired (a transformed backed-up object) to
// replace live: it takes the live resourceVersion, owner references and,
// where desired leaves them to the cluster, what the cluster allocated
// (cluster IPs, node ports, a claim's volume, a Job's selector, a pod's
// node) and the live status.
func mergeForUpdate(desired, live *unstructured.Unstructured, gr schema.GroupResource) *unstructured.Unstructured {
	desired.SetResourceVersion(live.GetResourceVersion())
	keep := func(fields ...string) {
		if _, ok, _ := unstructured.NestedFieldNoCopy(desired.Object, fields...); ok {
			return
		}
		if v, ok, _ := unstructured.NestedFieldCopy(live.Object, fields...); ok {
			_ = unstructured.SetNestedField(desired.Object, v, fields...)
		}
	}
	keep("metadata", "ownerReferences")
	keep("metadata", "finalizers")
	keep("status")
	switch gr {
	case grService:
		keep("spec", "clusterIP")
		keep("spec", "clusterIPs")
		keep("spec", "healthCheckNodePort")
		keepNodePorts(desired, live)
	case grPVC:
		keep("spec", "volumeName")
	case grPod:
		keep("spec", "nodeName")
	case grPV:
		// An existing PV keeps its binding: re-bound to the restored
		// claim (with a namespace mapping, the copy's), it would be taken
		// from the claim that uses it, which goes Lost.
		unstructured.RemoveNestedField(desired.Object, "spec", "claimRef")
		keep("spec", "claimRef")
	case schema.GroupResource{Group: "batch", Resource: "jobs"}:
		keep("spec", "selector")
		for _, l := range []string{"controller-uid", "batch.kubernetes.io/controller-uid"} {
			keep("spec", "template", "metadata", "labels", l)
		}
	}
	return desired
}

// keepNodePorts gives desired's service ports without a node port the
// live port's, matched by port number and protocol.
func keepNodePorts(desired, live *unstructured.Unstructured) {
	livePorts, _, _ := unstructured.NestedSlice(live.Object, "spec", "ports")
	ports, _, _ := unstructured.NestedFieldNoCopy(desired.Object, "spec", "ports")
	list, _ := ports.([]any)
	for _, p := range list {
		pm, ok := p.(map[string]any)
		if !ok || pm["nodePort"] != nil {
			continue
		}
		for _, lp := range livePorts {
			lm, _ := lp.(map[string]any)
			if lm["nodePort"] != nil && lm["port"] == pm["port"] && protocolOf(lm) == protocolOf(pm) {
				pm["nodePort"] = lm["nodePort"]
			}
		}
	}
}

func protocolOf(port map[string]any) string {
	if p, _ := port["protocol"].(string); p != "" {
		return p
	}
	return "TCP"
}
