package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/volapi"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// The restore half. The CLI creates a VolumeRestore right after the pod,
// before the scheduler has placed it, so the item names no node. Every
// agent watches the unassigned items and the pods on its own node; the
// agent whose node runs the item's pod (by UID) writes its node into the
// item (a resourceVersion-guarded update: of two agents, one wins), and
// from then on the item is worked like a VolumeBackup: claimed with
// volapi.Decide, heartbeat, retried when left half-done.

var gvrPod = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// Queue key prefixes: one queue carries both kinds of work (the volumes
// at once are bounded together); namespaces never hold ":".
const (
	keyRestore = "restore:" // a VolumeRestore of this node: claim and fill
	keyAssign  = "assign:"  // a VolumeRestore without a node: take it if its pod is here
)

// restoreInformers watches what the restore half needs: the node's
// VolumeRestores, the unassigned ones, and the pods scheduled here.
type restoreInformers struct {
	factories  []dynamicinformer.DynamicSharedInformerFactory
	unassigned cache.SharedIndexInformer
	pods       cache.SharedIndexInformer
}

const podUIDIndex = "uid"

func (ag *Agent) startRestoreInformers(ctx context.Context, resync time.Duration) (*restoreInformers, error) {
	ri := &restoreInformers{}
	nodeSel := volapi.LabelNode + "=" + volapi.NodeLabelValue(ag.cfg.Node)
	mine := dynamicinformer.NewFilteredDynamicSharedInformerFactory(ag.cfg.Dyn, resync, ag.cfg.Namespace,
		func(o *metav1.ListOptions) { o.LabelSelector = nodeSel })
	open := dynamicinformer.NewFilteredDynamicSharedInformerFactory(ag.cfg.Dyn, resync, ag.cfg.Namespace,
		func(o *metav1.ListOptions) { o.LabelSelector = volapi.LabelRestore + ",!" + volapi.LabelNode })
	// Pods on this node, in every namespace: a field selector works for
	// pods (not for custom resources).
	pods := dynamicinformer.NewFilteredDynamicSharedInformerFactory(ag.cfg.Dyn, 0, "",
		func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName=" + ag.cfg.Node })
	ri.factories = []dynamicinformer.DynamicSharedInformerFactory{mine, open, pods}

	enqueue := func(prefix string) cache.ResourceEventHandlerFuncs {
		add := func(obj any) {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				ag.queue.Add(prefix + key(u))
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, obj any) { add(obj) }}
	}
	if _, err := mine.ForResource(volapi.VolumeRestoreResource).Informer().AddEventHandler(enqueue(keyRestore)); err != nil {
		return nil, err
	}
	ri.unassigned = open.ForResource(volapi.VolumeRestoreResource).Informer()
	if _, err := ri.unassigned.AddEventHandler(enqueue(keyAssign)); err != nil {
		return nil, err
	}
	if err := ri.unassigned.AddIndexers(cache.Indexers{podUIDIndex: func(obj any) ([]string, error) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			uid, _, _ := unstructured.NestedString(u.Object, "spec", "pod", "uid")
			return []string{uid}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, err
	}
	ri.pods = pods.ForResource(gvrPod).Informer()
	if err := ri.pods.AddIndexers(cache.Indexers{podUIDIndex: func(obj any) ([]string, error) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			return []string{string(u.GetUID())}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, err
	}
	// A pod scheduled here may be what an unassigned item waits for.
	podEvent := func(obj any) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		objs, _ := ri.unassigned.GetIndexer().ByIndex(podUIDIndex, string(u.GetUID()))
		for _, o := range objs {
			if vr, ok := o.(*unstructured.Unstructured); ok {
				ag.queue.Add(keyAssign + key(vr))
			}
		}
	}
	if _, err := ri.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: podEvent, UpdateFunc: func(_, obj any) { podEvent(obj) },
	}); err != nil {
		return nil, err
	}
	for _, inf := range []cache.SharedIndexInformer{mine.ForResource(volapi.VolumeRestoreResource).Informer(), ri.unassigned, ri.pods} {
		if err := inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			ag.cfg.Logf("watch for restores: %v (retrying)", err)
		}); err != nil {
			return nil, err
		}
	}
	for _, f := range ri.factories {
		f.Start(ctx.Done())
	}
	return ri, nil
}

func (ri *restoreInformers) shutdown() {
	for _, f := range ri.factories {
		f.Shutdown()
	}
}

// podByUID is the pod with that UID on this node, from the informer.
func (ri *restoreInformers) podByUID(uid string) *unstructured.Unstructured {
	objs, _ := ri.pods.GetIndexer().ByIndex(podUIDIndex, uid)
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			return u
		}
	}
	return nil
}

// assign takes an unassigned item whose pod runs on this node: it sets
// Spec.Node and the node label in one update guarded by the item's
// resourceVersion, so two agents never both take it. An item whose pod
// is elsewhere (or not scheduled yet) is left for that pod's event.
func (ag *Agent) assign(ctx context.Context, k string) {
	ns, name := nsOf(k), k[len(nsOf(k))+1:]
	items := ag.cfg.Dyn.Resource(volapi.VolumeRestoreResource).Namespace(ns)
	u, err := items.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if !apierrors.IsNotFound(err) && ctx.Err() == nil {
			ag.cfg.Logf("%s: %v", k, err)
		}
		return
	}
	vr, err := volapi.VolumeRestoreFrom(u)
	if err != nil {
		ag.cfg.Logf("%s: %v", k, err)
		return
	}
	if vr.Spec.Node != "" || vr.Labels[volapi.LabelNode] != "" {
		return
	}
	pod := ag.restoreInf.podByUID(vr.Spec.Pod.UID)
	if pod == nil {
		return // not here (yet)
	}
	if pod.GetNamespace() != vr.Spec.Pod.Namespace || pod.GetName() != vr.Spec.Pod.Name {
		ag.cfg.Logf("%s: pod UID %s is %s/%s here, the item names %s/%s: left alone", k, vr.Spec.Pod.UID,
			pod.GetNamespace(), pod.GetName(), vr.Spec.Pod.Namespace, vr.Spec.Pod.Name)
		return
	}
	vr.Spec.Node = ag.cfg.Node
	if vr.Labels == nil {
		vr.Labels = map[string]string{}
	}
	vr.Labels[volapi.LabelNode] = volapi.NodeLabelValue(ag.cfg.Node)
	next, err := vr.ToUnstructured()
	if err == nil {
		_, err = items.Update(ctx, next, metav1.UpdateOptions{FieldManager: "cairn-agent"})
	}
	switch {
	case err == nil:
		ag.cfg.Logf("%s: pod %s/%s runs on this node: restoring volume %q here", k, vr.Spec.Pod.Namespace, vr.Spec.Pod.Name, vr.Spec.Volume)
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		// Another agent took it, or it changed: its event brings it back.
	default:
		ag.cfg.Logf("%s: assign to this node: %v (retrying)", k, err)
		ag.retryLater(keyAssign + k)
	}
}

// retryLater queues k again after a pause: an error that does not pass
// (RBAC, say) must not spin.
func (ag *Agent) retryLater(k string) {
	time.AfterFunc(2*time.Second, func() { ag.queue.Add(k) })
}

// podOf reads the item's pod for the restore's checks.
func (ag *Agent) podOf(ctx context.Context, ref volapi.PodRef) (*unstructured.Unstructured, error) {
	u, err := ag.cfg.Dyn.Resource(gvrPod).Namespace(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && string(u.GetUID()) != ref.UID) {
		return nil, fmt.Errorf("pod %s/%s (UID %s) is gone: the data goes only into the pod the restore created; restore again", ref.Namespace, ref.Name, ref.UID)
	}
	if err != nil {
		return nil, fmt.Errorf("read pod %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	return u, nil
}

// checkPod makes sure the item writes only into what its restore made: a
// pod on this node that carries the restore's label and mounts the volume
// (from the named claim, when one is named).
func checkPod(pod *unstructured.Unstructured, spec volapi.VolumeRestoreSpec, node string) error {
	if n, _, _ := unstructured.NestedString(pod.Object, "spec", "nodeName"); n != node {
		return fmt.Errorf("pod %s/%s runs on node %q, not on this agent's %q", spec.Pod.Namespace, spec.Pod.Name, n, node)
	}
	if l := pod.GetLabels()[volapi.LabelRestore]; l != spec.RestoreName {
		return fmt.Errorf("pod %s/%s was not created by restore %s (its %s label is %q): the agent writes only into pods their restore created",
			spec.Pod.Namespace, spec.Pod.Name, spec.RestoreName, volapi.LabelRestore, l)
	}
	vols, _, _ := unstructured.NestedSlice(pod.Object, "spec", "volumes")
	for _, v := range vols {
		vm, _ := v.(map[string]any)
		if vm["name"] != spec.Volume {
			continue
		}
		claim, _, _ := unstructured.NestedString(vm, "persistentVolumeClaim", "claimName")
		if claim != spec.PVC {
			return fmt.Errorf("volume %q of pod %s/%s is claim %q, the item names claim %q", spec.Volume, spec.Pod.Namespace, spec.Pod.Name, claim, spec.PVC)
		}
		return nil
	}
	return fmt.Errorf("pod %s/%s has no volume %q", spec.Pod.Namespace, spec.Pod.Name, spec.Volume)
}

// splitKey splits a queue key into its kind and item.
func splitKey(k string) (prefix, item string) {
	for _, p := range []string{keyRestore, keyAssign} {
		if strings.HasPrefix(k, p) {
			return p, k[len(p):]
		}
	}
	return "", k
}
