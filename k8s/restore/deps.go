package restore

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	grClusterRole   = schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}
	grCRB           = schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"}
	grRoleBinding   = schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}
	grPriorityClass = schema.GroupResource{Group: "scheduling.k8s.io", Resource: "priorityclasses"}
	grRuntimeClass  = schema.GroupResource{Group: "node.k8s.io", Resource: "runtimeclasses"}
	grIngress       = schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}
	grIngressClass  = schema.GroupResource{Group: "networking.k8s.io", Resource: "ingressclasses"}
)

// addDependencies selects the cluster-scoped objects of the backup that
// selected objects need to work in a new cluster: the PVs of claims, the
// storage classes of both (after mapping), the CRDs of custom resources,
// the PriorityClasses and RuntimeClasses of pods and pod templates, the
// IngressClasses of Ingresses, the ClusterRoleBindings whose subjects name a restored ServiceAccount (in its namespace in the
// backup) and the ClusterRoles of those and of restored RoleBindings. The
// backup's needs (k8s/backup/needs.go) saves the same for a namespace
// backup. Only --exclude-resources keeps them out.
func (rs *restorer) addDependencies(cands []*restoreItem, selected map[*restoreItem]bool) {
	byName := map[schema.GroupResource]map[string]*restoreItem{}
	for _, it := range cands {
		if it.m.Namespace == "" && !selected[it] {
			if byName[it.gr] == nil {
				byName[it.gr] = map[string]*restoreItem{}
			}
			byName[it.gr][it.m.Name] = it
		}
	}
	add := func(gr schema.GroupResource, name string) {
		it := byName[gr][name]
		if it == nil || selected[it] || it.result.Action == ActionSkipped || rs.filter.resources.Excluded(rs.names.of(gr)) {
			return
		}
		selected[it] = true
		delete(byName[gr], name)
	}
	// Claims name their volume; a volume names its claim.
	claims := map[[2]string]bool{}
	for it := range selected {
		if it.gr == grPVC && it.src != nil {
			claims[[2]string{it.m.Namespace, it.m.Name}] = true
			if vol, _, _ := unstructured.NestedString(it.src.Object, "spec", "volumeName"); vol != "" {
				add(grPV, vol)
			}
		}
	}
	for _, it := range byName[grPV] {
		if it.src == nil {
			continue
		}
		ns, _, _ := unstructured.NestedString(it.src.Object, "spec", "claimRef", "namespace")
		name, _, _ := unstructured.NestedString(it.src.Object, "spec", "claimRef", "name")
		if claims[[2]string{ns, name}] {
			add(grPV, it.m.Name)
		}
	}
	// What each object names; the service accounts restored.
	accounts := map[[2]string]bool{}
	var sel []*restoreItem // a copy: add changes selected
	for it := range selected {
		sel = append(sel, it)
	}
	for _, it := range sel {
		if it.src == nil {
			continue
		}
		for _, sc := range storageClassesOf(it.src, it.gr) {
			add(grStorageClass, mapName(rs.opts.StorageClassMappings, sc))
		}
		if it.gr.Group != "" {
			add(grCRD, it.gr.Resource+"."+it.gr.Group) // a CRD is named <plural>.<group>
		}
		add(grPriorityClass, podSpecString(it.src, it.gr, "priorityClassName"))
		add(grRuntimeClass, podSpecString(it.src, it.gr, "runtimeClassName"))
		switch it.gr {
		case grRoleBinding:
			add(grClusterRole, clusterRoleOf(it.src))
		case grIngress:
			ic, _, _ := unstructured.NestedString(it.src.Object, "spec", "ingressClassName")
			add(grIngressClass, ic)
		}
		if it.gr == grServiceAcct {
			accounts[[2]string{it.m.Namespace, it.m.Name}] = true
		}
	}
	// The bindings of the restored accounts, then every restored
	// binding's ClusterRole.
	for _, it := range byName[grCRB] {
		if it.src != nil && bindsAccount(it.src, accounts) {
			add(grCRB, it.m.Name)
		}
	}
	for it := range selected {
		if it.gr == grCRB && it.src != nil {
			add(grClusterRole, clusterRoleOf(it.src))
		}
	}
}

// storageClassesOf lists the storage classes an object refers to.
func storageClassesOf(obj *unstructured.Unstructured, gr schema.GroupResource) []string {
	var out []string
	one := func(o map[string]any) {
		if sc, _, _ := unstructured.NestedString(o, "spec", "storageClassName"); sc != "" {
			out = append(out, sc)
		} else if sc, _, _ := unstructured.NestedString(o, "metadata", "annotations", "volume.beta.kubernetes.io/storage-class"); sc != "" {
			out = append(out, sc)
		}
	}
	switch gr {
	case grPV, grPVC:
		one(obj.Object)
	case schema.GroupResource{Group: "apps", Resource: "statefulsets"}:
		tmpls, _, _ := unstructured.NestedSlice(obj.Object, "spec", "volumeClaimTemplates")
		for _, t := range tmpls {
			if tm, ok := t.(map[string]any); ok {
				one(tm)
			}
		}
	}
	return out
}

// podSpecString is a string field of the pod spec of a pod or pod
// template ("priorityClassName"), or "" (podSpecPaths: transform_image.go).
func podSpecString(obj *unstructured.Unstructured, gr schema.GroupResource, field string) string {
	p, ok := podSpecPaths[gr]
	if !ok {
		return ""
	}
	s, _, _ := unstructured.NestedString(obj.Object, append(append([]string{}, p...), field)...)
	return s
}

// clusterRoleOf is the ClusterRole a (Cluster)RoleBinding grants, or "".
func clusterRoleOf(binding *unstructured.Unstructured) string {
	kind, _, _ := unstructured.NestedString(binding.Object, "roleRef", "kind")
	name, _, _ := unstructured.NestedString(binding.Object, "roleRef", "name")
	if kind != "ClusterRole" {
		return ""
	}
	return name
}

// bindsAccount reports whether a binding's subjects name one of the
// service accounts ({namespace, name}).
func bindsAccount(binding *unstructured.Unstructured, accounts map[[2]string]bool) bool {
	subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
	for _, s := range subjects {
		m, _ := s.(map[string]any)
		ns, _ := m["namespace"].(string)
		name, _ := m["name"].(string)
		if m["kind"] == "ServiceAccount" && accounts[[2]string{ns, name}] {
			return true
		}
	}
	return false
}
