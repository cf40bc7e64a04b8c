package restore

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"golang.org/x/sync/errgroup"
)

// restoreItem is one object on its way into the cluster.
type restoreItem struct {
	m      Manifest // Path "" for a namespace the backup does not hold
	gr     schema.GroupResource
	src    *unstructured.Unstructured // as backed up; nil when unreadable
	err    error                      // why src could not be read
	obj    *unstructured.Unstructured // transformed: what is written
	keep   bool                       // write the backed-up status
	result ItemResult
	// volumes of a pod whose data is restored into it (volumes.go); uid
	// of the object this restore created.
	volumes []string
	uid     string
}

func (it *restoreItem) kind(api *apiResources) string {
	if it.src != nil {
		return it.src.GetKind()
	}
	if ar := api.lookup(it.gr); ar != nil {
		return ar.Kind
	}
	return ""
}

// plan reads the backup's manifests, applies the filters and the
// dependency rules and transforms what is to be restored. Everything left
// out is recorded as skipped.
func (rs *restorer) plan(ctx context.Context) ([]*restoreItem, error) {
	f := rs.filter
	incCluster := rs.opts.IncludeClusterResources
	var cands []*restoreItem
	for _, m := range rs.src.Manifests {
		it := &restoreItem{m: m, gr: m.GroupResource()}
		ns := m.Namespace
		if it.gr == grNamespace {
			ns = m.Name
		}
		switch {
		case neverRestoreReason(it.gr, ns) != "",
			ns != "" && !f.namespace(ns),
			ns == "" && incCluster != nil && !*incCluster:
			rs.skip(it)
			continue
		}
		cands = append(cands, it)
	}
	if err := rs.decodeAll(ctx, cands); err != nil {
		return nil, err
	}

	// The objects the filters select.
	clusterAll := (incCluster != nil && *incCluster) || (incCluster == nil && f.fullNamespaces())
	selected := map[*restoreItem]bool{}
	for _, it := range cands {
		if it.m.Namespace == "" && it.gr != grNamespace && !clusterAll {
			continue // only as a dependency, below
		}
		kind := it.kind(rs.api)
		if f.resourceIncluded(it.gr, kind) && !f.resourceExcluded(it.gr, kind) &&
			(it.src == nil || f.labelsMatch(it.src.GetLabels())) {
			selected[it] = true
		}
	}
	if incCluster == nil || *incCluster {
		rs.addDependencies(cands, selected)
	}
	items := rs.addNamespaces(cands, selected)
	leftOut := rs.pvsLeftOut(cands, selected)

	// Transform what is selected; record the rest.
	pvs := map[string]bool{}
	for it := range selected {
		if it.gr == grPV && leftOut[it] == "" {
			pvs[it.m.Name] = true
		}
	}
	owners := map[ownerKey]bool{}
	for it := range selected {
		if it.gr == grJob || it.gr == grCronJob {
			owners[ownerKey{it.gr, it.m.Namespace, it.m.Name}] = true
		}
	}
	var out []*restoreItem
	for _, it := range items {
		if !selected[it] || madeByRestoredOwner(it, owners) {
			rs.skip(it)
			continue
		}
		if why := leftOut[it]; why != "" {
			rs.record(ItemResult{Resource: grString(it.gr), Name: it.m.Name, Action: ActionSkipped, Reason: why}, true)
			continue
		}
		if it.src == nil {
			if ns := mapName(rs.opts.NamespaceMappings, it.m.Namespace); ns != it.m.Namespace {
				it.result.Namespace, it.result.SourceNamespace = ns, it.m.Namespace
			}
			it.result.Action, it.result.Reason = ActionFailed, it.err.Error()
			rs.record(it.result, true)
			continue
		}
		if why := skipRuleReason(it.gr, it.src, skipRules{
			IncludeFinished: rs.opts.IncludeFinished, IncludeBootstrapTokens: rs.opts.IncludeBootstrapTokens,
		}); why != "" {
			r := ItemResult{Resource: grString(it.gr), Namespace: mapName(rs.opts.NamespaceMappings, it.m.Namespace), Name: it.m.Name, Action: ActionSkipped, Reason: why}
			if r.Namespace != it.m.Namespace {
				r.SourceNamespace = it.m.Namespace
			}
			rs.record(r, true)
			continue
		}
		vol, _, _ := unstructured.NestedString(it.src.Object, "spec", "volumeName")
		it.keep = resourceMatches(rs.filter.statusRes, it.gr, it.src.GetKind())
		it.obj = it.src.DeepCopy()
		if why := transformForRestore(it.obj, it.gr, transformConfig{
			BackupName: rs.res.Backup, RestoreName: rs.res.Name,
			Namespaces: rs.opts.NamespaceMappings, StorageClasses: rs.opts.StorageClassMappings,
			Images: rs.opts.ImageMappings, PreserveNodePorts: rs.opts.PreserveNodePorts,
			KeepStatus: it.keep, KeepVolumeName: vol != "" && pvs[vol],
		}); why != "" {
			rs.skip(it)
			continue
		}
		if !rs.modify(it) {
			continue
		}
		if it.gr == grPod && rs.opts.VolumeData != nil {
			if it.volumes = rs.dataVolumesOf(it.src); len(it.volumes) > 0 {
				addRestoreWait(it.obj, it.volumes, rs.opts.VolumeData.HelperImage, rs.res.Name)
			}
		}
		it.result.Namespace, it.result.Name = it.obj.GetNamespace(), it.obj.GetName()
		if it.m.Namespace != "" && it.m.Namespace != it.result.Namespace {
			it.result.SourceNamespace = it.m.Namespace
		}
		out = append(out, it)
	}
	rs.warnPodsLeftOut(out)
	rs.warnUnusedModifiers()
	return out, nil
}

// ownerKey names a Job or CronJob of the restore.
type ownerKey struct {
	gr              schema.GroupResource
	namespace, name string
}

// restoredOwners are the owners whose objects a restore leaves to them:
// what a pod's or a Job's controller must be.
var restoredOwners = map[schema.GroupResource]struct {
	gr   schema.GroupResource
	kind string
}{
	grPod: {grJob, "Job"},
	grJob: {grCronJob, "CronJob"},
}

// madeByRestoredOwner reports a pod whose controller is a Job, or a Job
// whose controller is a CronJob, when that owner is restored too. They are
// left to it: restored without owner and status, they would not be
// adopted (a restored Job's selector holds its new UID; a CronJob adopts
// no Job) and would run again beside what the owner starts itself.
func madeByRestoredOwner(it *restoreItem, owners map[ownerKey]bool) bool {
	owner, ok := restoredOwners[it.gr]
	if !ok || it.src == nil {
		return false
	}
	c := metav1.GetControllerOfNoCopy(it.src)
	if c == nil || c.Kind != owner.kind {
		return false
	}
	gv, err := schema.ParseGroupVersion(c.APIVersion)
	return err == nil && gv.Group == owner.gr.Group && owners[ownerKey{owner.gr, it.m.Namespace, c.Name}]
}

// skip records an item as skipped (not listed).
func (rs *restorer) skip(it *restoreItem) {
	rs.record(ItemResult{Resource: grString(it.gr), Namespace: it.m.Namespace, Name: it.m.Name, Action: ActionSkipped}, false)
}

// decodeAll reads the candidates' manifests in parallel.
func (rs *restorer) decodeAll(ctx context.Context, items []*restoreItem) error {
	// A manifest that cannot be read fails its item only (it.err).
	var g errgroup.Group
	g.SetLimit(max(1, rs.opts.Workers))
	for _, it := range items {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			it.result = ItemResult{Resource: grString(it.gr), Namespace: it.m.Namespace, Name: it.m.Name}
			it.src, it.err = rs.src.Object(ctx, it.m)
			return nil
		})
	}
	_ = g.Wait() // never fails: errors are in the items
	return ctx.Err()
}

// addDependencies selects the cluster-scoped objects that selected objects
// need: the PVs of claims, the storage classes of both (after mapping) and
// the CRDs of custom resources. Only --exclude-resources keeps them out.
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
		if it == nil || selected[it] || rs.filter.resourceExcluded(gr, it.kind(rs.api)) {
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
	for it := range selected {
		if it.src == nil {
			continue
		}
		for _, sc := range storageClassesOf(it.src, it.gr) {
			add(grStorageClass, mapName(rs.opts.StorageClassMappings, sc))
		}
		if it.gr.Group != "" {
			add(grCRD, it.gr.Resource+"."+it.gr.Group) // a CRD is named <plural>.<group>
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

// addNamespaces selects the Namespace of every selected namespaced object,
// adding an empty one when the backup does not hold it, and returns all
// candidates plus the added namespaces.
func (rs *restorer) addNamespaces(cands []*restoreItem, selected map[*restoreItem]bool) []*restoreItem {
	nsObjs := map[string]*restoreItem{}
	for _, it := range cands {
		if it.gr == grNamespace {
			nsObjs[it.m.Name] = it
		}
	}
	need := map[string]bool{}
	for it := range selected {
		if ns := it.m.Namespace; ns != "" && it.src != nil {
			need[ns] = true
		}
	}
	items := cands
	for ns := range need {
		if it := nsObjs[ns]; it != nil && it.src != nil {
			selected[it] = true
			continue
		}
		src := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns},
		}}
		it := &restoreItem{
			m: Manifest{Resource: grNamespace.Resource, Name: ns}, gr: grNamespace, src: src,
			result: ItemResult{Resource: grString(grNamespace), Name: ns},
		}
		selected[it] = true
		items = append(items, it)
	}
	return items
}
