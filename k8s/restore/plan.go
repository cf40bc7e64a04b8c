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
	rs.chooseVersions(ctx, cands)

	rs.names = newResourceNames(rs.api, rs.src.Manifests, cands)
	for _, w := range f.warnings(rs.names.list()) {
		rs.warn("%s", w)
	}

	// The objects the filters select, less those the skip rules leave out
	// (before anything is added for them: dependencies, namespaces).
	clusterAll := (incCluster != nil && *incCluster) || (incCluster == nil && f.fullNamespaces())
	selected := map[*restoreItem]bool{}
	for _, it := range cands {
		if it.m.Namespace == "" && it.gr != grNamespace && !clusterAll {
			continue // only as a dependency, below
		}
		if f.resourceSelected(rs.names.of(it.gr)) && (it.src == nil || f.labelsMatch(it.src.GetLabels())) {
			selected[it] = true
		}
	}
	rs.dropSkipped(selected)
	if incCluster == nil || *incCluster {
		rs.addDependencies(cands, selected)
		rs.dropSkipped(selected)
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
		if it.result.Action == ActionSkipped {
			continue // recorded by dropSkipped
		}
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
		vol, _, _ := unstructured.NestedString(it.src.Object, "spec", "volumeName")
		it.keep = f.keepStatus(rs.names.of(it.gr))
		it.obj = it.src.DeepCopy()
		transformForRestore(it.obj, it.gr, transformConfig{
			BackupName: rs.res.Backup, RestoreName: rs.res.Name,
			Namespaces: rs.opts.NamespaceMappings, StorageClasses: rs.opts.StorageClassMappings,
			Images: rs.opts.ImageMappings, PreserveNodePorts: rs.opts.PreserveNodePorts,
			KeepStatus: it.keep, KeepVolumeName: vol != "" && pvs[vol],
		})
		if !rs.modify(it) {
			continue
		}
		if it.gr == grPod && rs.opts.VolumeData != nil {
			if it.volumes = rs.dataVolumesOf(it.src); len(it.volumes) > 0 {
				addRestoreWait(it.obj, it.volumes, rs.opts.VolumeData.HelperImage, rs.res.Name)
			}
		}
		if it.gr == grPod {
			rs.addInitHook(it) // after restore-wait: it sees the data
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

// dropSkipped takes the selected objects that skipRuleReason leaves out
// out of the selection and records them, listed with the reason.
func (rs *restorer) dropSkipped(selected map[*restoreItem]bool) {
	rules := skipRules{IncludeFinished: rs.opts.IncludeFinished, IncludeBootstrapTokens: rs.opts.IncludeBootstrapTokens}
	for it := range selected {
		if it.src == nil {
			continue
		}
		why := skipRuleReason(it.gr, it.src, rules)
		if why == "" {
			continue
		}
		delete(selected, it)
		it.result = ItemResult{Resource: grString(it.gr), Namespace: mapName(rs.opts.NamespaceMappings, it.m.Namespace), Name: it.m.Name, Action: ActionSkipped, Reason: why}
		if it.result.Namespace != it.m.Namespace {
			it.result.SourceNamespace = it.m.Namespace
		}
		rs.record(it.result, true)
	}
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
