package restore

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Restoring pod volume data. A volume whose files are in the backup gets a
// new, empty volume (its claim is provisioned anew: the old PV is not
// restored), the restored pod that mounts it an init container that waits
// for the data, and the agent of the pod's node a VolumeRestore that says
// what to write into it.

// VolumeDataOptions say how the pod volume data of a backup is restored.
type VolumeDataOptions struct {
	// HelperImage is the image of the init container that waits for the
	// data: cairn, with cairn as its entrypoint.
	HelperImage string
	// AgentNamespace is where the VolumeRestore items are created: the
	// node agents' namespace.
	AgentNamespace string
	// RepositoryLocation names the repository for people (no secrets).
	RepositoryLocation string
}

// restoreWaitNames are the init containers that waited for an earlier
// restore's data: cairn's and Velero's (restore-wait; restic-wait before
// Velero 1.10). A pod backed up after such a restore still has one; kept,
// it would wait for a marker nobody writes.
var restoreWaitNames = []string{volapi.RestoreWaitContainer, "restore-wait", "restic-wait"}

var grVolumeRestore = schema.GroupResource{Group: volapi.Group, Resource: volapi.VolumeRestoreResource.Resource}

// nsName is a namespaced name in the backup (before mapping).
type nsName struct{ ns, name string }

// dataVolume is one volume whose tree the backup holds.
type dataVolume struct {
	info layout.VolumeInfo
	tree repo.ID
	path string // /volumes/<ns>/<pod>/<volume>
}

// volumeData is what the backup holds of pod volumes, for this restore.
type volumeData struct {
	byPod   map[nsName]map[string]*dataVolume // pod -> pod volume name -> data
	byClaim map[nsName]*dataVolume            // claim -> data
	// Guarded by rs.mu: claims whose data an item already restores (a
	// claim mounted by several restored pods is filled once), and the PVs
	// this restore created.
	claimDone  map[*dataVolume]bool
	createdPVs map[string]bool
}

// loadVolumeData finds the trees of the volumes backup.json lists as
// saved. Without VolumeData options nothing is restored of them.
func (rs *restorer) loadVolumeData(ctx context.Context) error {
	vd := &volumeData{byPod: map[nsName]map[string]*dataVolume{}, byClaim: map[nsName]*dataVolume{},
		claimDone: map[*dataVolume]bool{}, createdPVs: map[string]bool{}}
	rs.vd = vd
	if rs.opts.VolumeData == nil || rs.src.Info == nil || len(rs.src.Info.Volumes) == 0 {
		return nil
	}
	loader := snapshot.NewTreeLoader(rs.src.r, 64)
	for _, v := range rs.src.Info.Volumes {
		if v.Error != "" || (v.Result != "" && v.Result != layout.VolumeCompleted) {
			continue // failed or skipped: no tree
		}
		p, ok := volumePath(v)
		if !ok {
			rs.warn("backup.json lists volume %q of pod %s/%s under a name that is no path: its data is not restored", v.Volume, v.Namespace, v.Pod)
			continue
		}
		n, err := snapshot.FindNode(ctx, loader, *rs.src.Snapshot.Tree, p)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil || n.Type != snapshot.NodeDir || n.Subtree == nil {
			rs.warn("volume %s of pod %s/%s: backup.json lists it, but %s is not a directory in the snapshot; its data is not restored", v.Volume, v.Namespace, v.Pod, p)
			continue
		}
		dv := &dataVolume{info: v, tree: *n.Subtree, path: p}
		pod := nsName{v.Namespace, v.Pod}
		if vd.byPod[pod] == nil {
			vd.byPod[pod] = map[string]*dataVolume{}
		}
		vd.byPod[pod][v.Volume] = dv
		if v.PVC != "" {
			vd.byClaim[nsName{v.Namespace, v.PVC}] = dv
		}
	}
	return nil
}

// volumePath is /volumes/<ns>/<pod>/<volume>, when every part is a name.
func volumePath(v layout.VolumeInfo) (string, bool) {
	for _, c := range []string{v.Namespace, v.Pod, v.Volume} {
		if c == "" || c == "." || c == ".." || strings.ContainsAny(c, "/\x00") {
			return "", false
		}
	}
	return path.Join(layout.VolumesPath, v.Namespace, v.Pod, v.Volume), true
}

// pvsLeftOut says which selected PVs are not restored, and why: those
// whose claim's data is in the backup (the claim gets a new volume that
// the data goes into) and, as Velero does, those without data whose
// reclaim policy is Delete (their disk went with the old claim; the claim
// is provisioned anew). A Retain PV without data is restored as it was.
func (rs *restorer) pvsLeftOut(cands []*restoreItem, selected map[*restoreItem]bool) map[*restoreItem]string {
	withData := map[string]bool{} // PV names of claims with data
	for _, dv := range rs.vd.byClaim {
		if dv.info.PV != "" {
			withData[dv.info.PV] = true
		}
	}
	for _, it := range cands {
		if it.gr == grPVC && it.src != nil && rs.vd.byClaim[nsName{it.m.Namespace, it.m.Name}] != nil {
			if vol, _, _ := unstructured.NestedString(it.src.Object, "spec", "volumeName"); vol != "" {
				withData[vol] = true
			}
		}
	}
	out := map[*restoreItem]string{}
	for it := range selected {
		if it.gr != grPV || it.src == nil {
			continue
		}
		ns, _, _ := unstructured.NestedString(it.src.Object, "spec", "claimRef", "namespace")
		name, _, _ := unstructured.NestedString(it.src.Object, "spec", "claimRef", "name")
		policy, _, _ := unstructured.NestedString(it.src.Object, "spec", "persistentVolumeReclaimPolicy")
		switch {
		case withData[it.m.Name] || (name != "" && rs.vd.byClaim[nsName{ns, name}] != nil):
			out[it] = "its claim's data is in the backup: the claim gets a new volume and the data is restored into it"
		case policy == "Delete":
			out[it] = "reclaim policy Delete and no data in the backup: its claim gets a new volume"
		}
	}
	return out
}

// dataVolumesOf lists the volumes of a backed-up pod whose data the
// backup holds: saved for this pod, or a claim saved through another pod.
func (rs *restorer) dataVolumesOf(pod *unstructured.Unstructured) []string {
	vols, _, _ := unstructured.NestedSlice(pod.Object, "spec", "volumes")
	key := nsName{pod.GetNamespace(), pod.GetName()}
	var out []string
	for _, v := range vols {
		vm, _ := v.(map[string]any)
		name, _ := vm["name"].(string)
		claim, _, _ := unstructured.NestedString(vm, "persistentVolumeClaim", "claimName")
		if name == "" {
			continue
		}
		if rs.vd.byPod[key][name] != nil || (claim != "" && rs.vd.byClaim[nsName{key.ns, claim}] != nil) {
			out = append(out, name)
		}
	}
	return out
}

// stripRestoreWait removes the init containers of earlier restores.
func stripRestoreWait(obj *unstructured.Unstructured) {
	inits, ok, _ := unstructured.NestedSlice(obj.Object, "spec", "initContainers")
	if !ok {
		return
	}
	kept := inits[:0]
	for _, c := range inits {
		cm, _ := c.(map[string]any)
		if name, _ := cm["name"].(string); !slices.Contains(restoreWaitNames, name) {
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		unstructured.RemoveNestedField(obj.Object, "spec", "initContainers")
		return
	}
	_ = unstructured.SetNestedSlice(obj.Object, kept, "spec", "initContainers")
}

// addRestoreWait puts the init container that waits for the data first
// into a pod to be restored, mounting its volumes with data read-only.
// First: the other init containers (a database's migrations) may need the
// data.
func addRestoreWait(obj *unstructured.Unstructured, vols []string, image, restore string) {
	mounts := make([]any, 0, len(vols))
	for _, v := range vols {
		mounts = append(mounts, map[string]any{"name": v, "mountPath": volapi.RestoreWaitRoot + "/" + v, "readOnly": true})
	}
	c := map[string]any{
		"name":            volapi.RestoreWaitContainer,
		"image":           image,
		"imagePullPolicy": "IfNotPresent",
		"args": []any{"cluster", "restore-wait", "--volumes-root", volapi.RestoreWaitRoot,
			"--marker", restore, "--volumes", strings.Join(vols, ",")},
		"volumeMounts": mounts,
		// Small, and limited, so that a namespace's LimitRange or quota
		// that asks for them admits the pod.
		"resources": map[string]any{
			"requests": map[string]any{"cpu": "10m", "memory": "32Mi"},
			"limits":   map[string]any{"cpu": "100m", "memory": "128Mi"},
		},
		// It only looks for files: nothing it could need more rights for.
		"securityContext": map[string]any{
			"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
			"capabilities": map[string]any{"drop": []any{"ALL"}},
		},
	}
	// It runs as the pod's first container does when that one sets its
	// user itself: a pod that must not run as root admits it, and it may
	// look into the volumes as the application can.
	sc := c["securityContext"].(map[string]any)
	if ctrs, _, _ := unstructured.NestedSlice(obj.Object, "spec", "containers"); len(ctrs) > 0 {
		first, _ := ctrs[0].(map[string]any)
		for _, f := range []string{"runAsUser", "runAsGroup", "runAsNonRoot"} {
			if v, ok, _ := unstructured.NestedFieldCopy(first, "securityContext", f); ok {
				sc[f] = v
			}
		}
	}
	inits, _, _ := unstructured.NestedSlice(obj.Object, "spec", "initContainers")
	_ = unstructured.SetNestedSlice(obj.Object, append([]any{c}, inits...), "spec", "initContainers")
}

// claimVolume drops a claim's volumeName (body is what is sent) unless
// its PV was created by this restore: a PV that existed may belong to
// another claim (with a namespace mapping, to the original), and one that
// was not restored would leave the claim Pending forever.
func (rs *restorer) claimVolume(it *restoreItem, body *unstructured.Unstructured) {
	vol, _, _ := unstructured.NestedString(body.Object, "spec", "volumeName")
	if vol == "" {
		return
	}
	rs.mu.Lock()
	created := rs.vd.createdPVs[vol]
	rs.mu.Unlock()
	if !created {
		unstructured.RemoveNestedField(body.Object, "spec", "volumeName")
		unstructured.RemoveNestedField(it.obj.Object, "spec", "volumeName")
	}
}

// afterItem follows one restored object up: it notes created PVs and
// hands the volumes of a created pod to the agents.
func (rs *restorer) afterItem(ctx context.Context, it *restoreItem) {
	if it.gr == grPod {
		defer rs.startExecHook(ctx, it) // after the VolumeRestores: the pod waits for them
	}
	switch {
	case it.gr == grPV && it.result.Action == ActionCreated:
		rs.mu.Lock()
		rs.vd.createdPVs[it.obj.GetName()] = true
		rs.mu.Unlock()
	case it.gr == grPod && len(it.volumes) > 0:
		if it.result.Action != ActionCreated {
			rs.warn("pod %s was not created (%s): the data of its volumes %s is not restored; delete the pod and restore again",
				itemName(it.result), it.result.Action, strings.Join(it.volumes, ", "))
			return
		}
		for _, v := range it.volumes {
			rs.createVolumeRestore(ctx, it, v)
		}
	}
}

// createVolumeRestore creates the item that has the agent fill volume v of
// a restored pod.
func (rs *restorer) createVolumeRestore(ctx context.Context, it *restoreItem, v string) {
	srcPod := nsName{it.src.GetNamespace(), it.src.GetName()}
	claim := claimOf(it.src, v)
	dv := rs.vd.byPod[srcPod][v]
	if claim != "" {
		if c := rs.vd.byClaim[nsName{srcPod.ns, claim}]; c != nil {
			dv = c
		}
	}
	rs.mu.Lock()
	done := rs.vd.claimDone[dv]
	rs.vd.claimDone[dv] = true
	rs.mu.Unlock()
	if dv == nil || done {
		return // another restored pod's item fills this claim
	}
	vo := rs.opts.VolumeData
	spec := volapi.VolumeRestoreSpec{
		Pod:    volapi.PodRef{Namespace: it.obj.GetNamespace(), Name: it.obj.GetName(), UID: it.uid},
		Volume: v, PVC: claim,
		Repository:  volapi.RepositoryRef{ID: rs.src.r.Config().ID, Location: vo.RepositoryLocation},
		RestoreName: rs.res.Name,
		Source:      volapi.RestoreSource{SnapshotID: rs.src.Snapshot.ID.String(), Tree: dv.tree.String(), Path: dv.path},
		DoneMarker:  volapi.DoneMarker(rs.res.Name),
	}
	vr := volapi.NewVolumeRestore(vo.AgentNamespace, spec)
	vr.Name = volapi.ItemName(objectNamePart(rs.res.Name), it.uid, v) // the restore name is a label value, maybe no object name
	res := ItemResult{Resource: grString(grVolumeRestore), Namespace: vo.AgentNamespace, Name: vr.Name,
		Reason: fmt.Sprintf("volume %s of pod %s from %s", v, itemName(it.result), dv.path)}
	if rs.opts.DryRun {
		res.Action, res.Reason = ActionCreated, "dry run: "+res.Reason
		rs.record(res, true)
		return
	}
	u, err := vr.ToUnstructured()
	if err == nil {
		_, err = rs.dyn.Resource(volapi.VolumeRestoreResource).Namespace(vo.AgentNamespace).Create(ctx, u, metav1.CreateOptions{FieldManager: restoreFieldManager})
	}
	switch {
	case err == nil:
		res.Action = ActionCreated
	case apierrors.IsAlreadyExists(err):
		res.Action = ActionSkippedExists
	default:
		res.Action = ActionFailed
		res.Reason = fmt.Sprintf("%s: %s (are the agents installed in namespace %s?)", res.Reason, apiErrorText(err), vo.AgentNamespace)
	}
	rs.record(res, true)
}

// claimOf is the claim behind pod volume v, or "".
func claimOf(pod *unstructured.Unstructured, v string) string {
	vols, _, _ := unstructured.NestedSlice(pod.Object, "spec", "volumes")
	for _, x := range vols {
		vm, _ := x.(map[string]any)
		if vm["name"] == v {
			c, _, _ := unstructured.NestedString(vm, "persistentVolumeClaim", "claimName")
			return c
		}
	}
	return ""
}

var objectNameUnsafe = regexp.MustCompile(`[^a-z0-9.-]+`)

// objectNamePart makes a label value usable in an object name.
func objectNamePart(s string) string {
	v := strings.Trim(objectNameUnsafe.ReplaceAllString(strings.ToLower(s), "-"), "-.")
	if v == "" {
		return "restore"
	}
	return v
}

// checkVolumeData fails the restore before anything is written when pods
// would wait for data no agent can be told about.
func (rs *restorer) checkVolumeData(items []*restoreItem) error {
	for _, it := range items {
		if it.gr == grPod && len(it.volumes) > 0 {
			if rs.api.lookup(grVolumeRestore) == nil {
				return fmt.Errorf("the backup holds volume data, but the cluster does not serve %s: install the CRDs (cairn cluster install-crds) and the node agent, or restore without the data (--restore-volumes=false)", grString(grVolumeRestore))
			}
			return nil
		}
	}
	return nil
}

// warnPodsLeftOut names the pods with data that this restore does not
// restore although their namespace is restored (filtered out, or left to
// their Job): their data is not restored either.
func (rs *restorer) warnPodsLeftOut(out []*restoreItem) {
	restored := map[nsName]bool{}
	for _, it := range out {
		if it.gr == grPod {
			restored[nsName{it.m.Namespace, it.m.Name}] = true
		}
	}
	var pods []nsName
	for pod := range rs.vd.byPod {
		pods = append(pods, pod)
	}
	slices.SortFunc(pods, func(a, b nsName) int { return strings.Compare(a.ns+"/"+a.name, b.ns+"/"+b.name) })
	for _, pod := range pods {
		if !restored[pod] && rs.filter.namespace(pod.ns) {
			rs.warn("pod %s/%s is not restored: the data of its volumes is not restored either (volume data goes back only into the restored pod; see --include-resources)", pod.ns, pod.name)
		}
	}
}
