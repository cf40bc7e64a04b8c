package backup

import (
	"cmp"
	"context"
	"maps"
	"slices"

	"github.com/cairn-backup/cairn/k8s/kube"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// What the selected objects need beyond themselves, so that they work when
// restored into a new cluster: the claims and service accounts of pods
// (also when a label selector picked the pods but not them), the
// ClusterRoleBindings of those service accounts, and the cluster-scoped
// objects of ClusterRefs. Each addition is logged with the object that
// needed it.

// runSteps runs the backup's lists in the order the needs ask for.
// Namespaced objects first: they say what else is needed; claims before
// PersistentVolumes, PersistentVolumes before the rest (they need
// StorageClasses), the service accounts' bindings before the ClusterRoles
// they name, and so on until nothing new is needed.
func (b *backupRun) runSteps(ctx context.Context, nsTasks, pvTasks, clusterTasks []task) error {
	tried := map[ObjectRef]bool{}
	for _, step := range []func() []task{
		func() []task { return nsTasks },
		func() []task { return b.neededTasks(neededNamespaced, tried) },
		func() []task { return pvTasks },
		func() []task { return b.neededTasks(neededPVs, tried) },
		func() []task { return clusterTasks },
	} {
		if err := b.runTasks(ctx, step()); err != nil {
			return err
		}
	}
	b.bindServiceAccounts(ctx)
	for {
		tasks := b.neededTasks(neededOtherCluster, tried)
		if len(tasks) == 0 {
			return ctx.Err()
		}
		if err := b.runTasks(ctx, tasks); err != nil {
			return err
		}
	}
}

// neededKind says which needs a step reads.
type neededKind int

const (
	neededNamespaced neededKind = iota // claims, service accounts
	neededPVs
	neededOtherCluster
)

func (k neededKind) has(ref ObjectRef) bool {
	switch {
	case ref.Namespace != "":
		return k == neededNamespaced
	case ref.Dir() == "persistentvolumes":
		return k == neededPVs
	default:
		return k == neededOtherCluster && ref.Dir() != "namespaces" // saved apart
	}
}

// neededTasks reads the objects the saved ones need that are not saved
// yet and were not tried (tried is updated). Namespaced needs lie in the
// selected namespaces and are always read; cluster-scoped ones only when
// the selection takes needed cluster objects (--include-cluster-resources
// is not false). They pass the exclude list, not the include list.
func (b *backupRun) neededTasks(kind neededKind, tried map[ObjectRef]bool) []task {
	if kind != neededNamespaced && !b.sel.neededCluster {
		return nil
	}
	type key struct{ dir, ns string }
	byKey := map[key][]string{}
	for _, ref := range b.store.unsavedNeeds() {
		if !kind.has(ref) || tried[ref] || (ref.Namespace != "" && !b.nsSelected[ref.Namespace]) {
			continue
		}
		tried[ref] = true
		k := key{ref.Dir(), ref.Namespace}
		byKey[k] = append(byKey[k], ref.Name)
	}
	var tasks []task
	keys := slices.SortedFunc(maps.Keys(byKey), func(a, b key) int {
		return cmp.Or(cmp.Compare(a.dir, b.dir), cmp.Compare(a.ns, b.ns))
	})
	for _, k := range keys {
		r, ok := b.disc.Find(k.dir)
		if !ok {
			b.log.logf("needed %s %v: the server does not serve %s", k.dir, byKey[k], k.dir)
			continue
		}
		if why := SkipReason(r); why != "" || b.sel.resources.Excluded(r) {
			continue
		}
		slices.Sort(byKey[k])
		tasks = append(tasks, task{res: r, namespace: k.ns, names: byKey[k]})
	}
	return tasks
}

// NamespacedRefs returns the objects in obj's own namespace that obj (of
// resource r) needs after a restore: a pod's claims (ephemeral volumes'
// claims are the pod's own, made again with it, and are not) and the
// service account of a pod or pod template.
func NamespacedRefs(r kube.Resource, obj map[string]any) []ObjectRef {
	ns := str(obj, "metadata", "namespace")
	if ns == "" {
		return nil
	}
	var refs []ObjectRef
	add := func(resource, name string) {
		ref := ObjectRef{Resource: resource, Namespace: ns, Name: name}
		if name != "" && !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	serviceAccount := func(fields ...string) {
		name := str(obj, append(fields, "serviceAccountName")...)
		if name == "" {
			name = str(obj, append(fields, "serviceAccount")...) // the deprecated alias
		}
		add("serviceaccounts", name)
	}
	switch r.Dir() {
	case "pods":
		serviceAccount("spec")
		spec, _ := obj["spec"].(map[string]any)
		vols, _ := spec["volumes"].([]any)
		for _, v := range vols {
			if m, ok := v.(map[string]any); ok {
				add("persistentvolumeclaims", str(m, "persistentVolumeClaim", "claimName"))
			}
		}
	case "deployments.apps", "replicasets.apps", "daemonsets.apps", "statefulsets.apps", "jobs.batch", "replicationcontrollers":
		serviceAccount("spec", "template", "spec")
	case "cronjobs.batch":
		serviceAccount("spec", "jobTemplate", "spec", "template", "spec")
	}
	return refs
}

// bindServiceAccounts records as needed the ClusterRoleBindings whose
// subjects name a ServiceAccount in the backup: without them the restored
// workloads lose the rights they had. Their ClusterRoles follow as needs
// of the bindings.
func (b *backupRun) bindServiceAccounts(ctx context.Context) {
	if !b.sel.neededCluster {
		return
	}
	crb, ok := b.disc.Find("clusterrolebindings.rbac.authorization.k8s.io")
	if !ok || SkipReason(crb) != "" || b.sel.resources.Excluded(crb) {
		return
	}
	if b.sel.allCluster && b.sel.resources.Included(crb) && b.sel.labels.Empty() {
		return // all of them are saved already
	}
	err := b.list(ctx, crb, "", "", func(obj *unstructured.Unstructured) error {
		subjects, _, _ := unstructured.NestedSlice(obj.Object, "subjects")
		for _, s := range subjects {
			m, _ := s.(map[string]any)
			if str(m, "kind") != "ServiceAccount" {
				continue
			}
			sa := ObjectRef{Resource: "serviceaccounts", Namespace: str(m, "namespace"), Name: str(m, "name")}
			if sa.Namespace != "" && b.store.saved(sa.path()) {
				ref := ObjectRef{Resource: crb.Resource, Group: crb.Group, Name: obj.GetName()}
				b.store.need(ref, "binding of ServiceAccount "+sa.Namespace+"/"+sa.Name)
				return nil
			}
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		b.log.errorf("list %s to find the bindings of the backed-up service accounts: %v", crb.Dir(), err)
	}
}
