package restore

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// mapSubjects points the ServiceAccount subjects of a RoleBinding or
// ClusterRoleBinding that lie in a mapped namespace at the new namespace.
//
// A ClusterRoleBinding so changed is also renamed, to
// "<name>-<new namespace>[-<another>…]": a copy of an app restored into a
// new namespace (the usual reason for a mapping) must not take the
// binding away from the original app, which, in the same cluster, still
// runs under the original binding. Kept under its name, the binding
// would be found existing and left alone (the copy gets no rights) or,
// with --existing-resource-policy update, rewritten (the original loses
// them). The copy keeps every other subject as it is, so nothing it bound
// is lost where the original is not in the target; the name is the same
// on every restore into those namespaces, so restoring again finds it.
func mapSubjects(obj *unstructured.Unstructured, gr schema.GroupResource, m map[string]string) {
	subjects, _, _ := unstructured.NestedFieldNoCopy(obj.Object, "subjects")
	list, _ := subjects.([]any)
	var moved []string
	for _, s := range list {
		sm, ok := s.(map[string]any)
		if !ok || sm["kind"] != "ServiceAccount" {
			continue
		}
		ns, _ := sm["namespace"].(string)
		if to := mapName(m, ns); ns != "" && to != ns {
			sm["namespace"] = to
			if !slices.Contains(moved, to) {
				moved = append(moved, to)
			}
		}
	}
	if gr == grCRB && len(moved) > 0 {
		slices.Sort(moved)
		obj.SetName(copiedBindingName(obj.GetName(), moved))
	}
}

// maxBindingName keeps copied names short enough for any tool that
// stores them in a label or a DNS subdomain.
const maxBindingName = 253

// copiedBindingName is the name of a ClusterRoleBinding's copy for the
// namespaces (sorted); shortened with a hash when too long.
func copiedBindingName(name string, namespaces []string) string {
	n := name + "-" + strings.Join(namespaces, "-")
	if len(n) <= maxBindingName {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	h := hex.EncodeToString(sum[:])[:10]
	return n[:maxBindingName-len(h)-1] + "-" + h
}
