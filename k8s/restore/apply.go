package restore

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	"golang.org/x/sync/errgroup"
)

// restoreFieldManager names cairn in managedFields.
const restoreFieldManager = "cairn"

// runStage restores the objects of one resource in parallel. An object
// that fails is recorded as failed and the others go on.
func (rs *restorer) runStage(ctx context.Context, gr schema.GroupResource, items []*restoreItem) {
	var g errgroup.Group
	g.SetLimit(max(1, rs.opts.Workers))
	for _, it := range items {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			rs.restoreOne(ctx, it)
			rs.record(it.result, true)
			rs.afterItem(ctx, it)
			return nil
		})
	}
	_ = g.Wait() // never fails: results are in the items
}

func (rs *restorer) dryRun() []string {
	if rs.opts.DryRun {
		return []string{metav1.DryRunAll}
	}
	return nil
}

// unvalidated says why a dry run cannot ask the server about an object:
// its namespace or its CRD would only be created by this restore.
func (rs *restorer) unvalidated(it *restoreItem) string {
	if !rs.opts.DryRun {
		return ""
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if ns := it.obj.GetNamespace(); ns != "" && rs.dryNamespaces[ns] {
		return "dry run: not validated by the server, namespace " + ns + " would be created first"
	}
	if rs.dryGroups[it.gr] {
		return "dry run: not validated by the server, its CRD would be created first"
	}
	return ""
}

// restoreOne creates (or updates) one object and sets its result.
func (rs *restorer) restoreOne(ctx context.Context, it *restoreItem) {
	res := &it.result
	fail := func(format string, args ...any) {
		res.Action, res.Reason = ActionFailed, fmt.Sprintf(format, args...)
	}
	if why := rs.unvalidated(it); why != "" {
		res.Action, res.Reason = ActionCreated, why
		rs.noteDryCreate(it)
		return
	}
	gvr, ar, err := rs.api.gvrFor(it.gr, it.obj)
	if err != nil {
		fail("%v", err)
		return
	}
	ns := it.obj.GetNamespace()
	if ar.Namespaced != (ns != "") {
		fail("the cluster serves %s as %s", grString(it.gr), map[bool]string{true: "namespaced", false: "cluster-scoped"}[ar.Namespaced])
		return
	}
	var ri dynamic.ResourceInterface = rs.dyn.Resource(gvr)
	if ns != "" {
		ri = rs.dyn.Resource(gvr).Namespace(ns)
	}
	var classNote string
	if it.gr == grStorageClass {
		classNote = rs.keepOneDefaultClass(ctx, it.obj)
	}
	body := it.obj.DeepCopy()
	// Sent on create, managedFields are replaced by the creator's; they
	// are patched in afterwards (restoreManagedFields).
	unstructured.RemoveNestedField(body.Object, "metadata", "managedFields")
	var status any
	if it.keep && ar.HasStatus {
		status = body.Object["status"]
		delete(body.Object, "status")
	}
	// Ephemeral containers cannot be set on create, only added later.
	var ephemeral []any
	if it.gr == grPod {
		ephemeral, _, _ = unstructured.NestedSlice(body.Object, "spec", "ephemeralContainers")
		unstructured.RemoveNestedField(body.Object, "spec", "ephemeralContainers")
	}
	if it.gr == grPVC {
		rs.claimVolume(it, body)
	}
	created, err := ri.Create(ctx, body, metav1.CreateOptions{DryRun: rs.dryRun(), FieldManager: restoreFieldManager})
	if apierrors.IsAlreadyExists(err) && it.gr == grNamespace {
		// A namespace still being deleted (from a "delete, then restore"):
		// wait until it is gone, then create it anew.
		var gone bool
		if gone, err = rs.namespaceGone(ctx, ri, it.obj.GetName()); gone && err == nil {
			if rs.opts.DryRun {
				res.Action, res.Reason = ActionCreated, "dry run: the namespace is being deleted; a restore would wait, then create it"
				rs.noteDryCreate(it)
				return
			}
			created, err = ri.Create(ctx, body, metav1.CreateOptions{FieldManager: restoreFieldManager})
		} else if err == nil {
			err = apierrors.NewAlreadyExists(schema.GroupResource{Resource: "namespaces"}, it.obj.GetName())
		}
	}
	if it.gr == grService && err != nil && !apierrors.IsAlreadyExists(err) {
		created, err = rs.createService(ctx, ri, it, body, err)
	}
	switch {
	case err == nil:
		res.Action = ActionCreated
		it.uid = string(created.GetUID())
		rs.noteDryCreate(it)
		if it.gr == grNamespace && !rs.opts.DryRun {
			rs.noteCreatedNamespace(it.obj.GetName())
		}
		if status != nil {
			rs.writeStatus(ctx, ri, it, created, status)
		}
		if len(ephemeral) > 0 && !rs.opts.DryRun {
			rs.addEphemeral(ctx, ri, it, created, ephemeral)
		}
		rs.restoreManagedFields(ctx, ri, it)
	case apierrors.IsAlreadyExists(err):
		switch {
		case it.gr == grServiceAcct && autoCreated(it.gr, it.obj.GetName()) && rs.createdNamespace(ns):
			// Made by the cluster an instant ago, in the namespace this
			// restore created: it gets what the backed-up one had
			// (image pull secrets, automount setting, labels).
			rs.update(ctx, ri, it, status)
			if res.Action == ActionUpdated {
				res.Reason = "made by the cluster in the restored namespace; set to the backed-up one"
			}
		case autoCreated(it.gr, it.obj.GetName()):
			res.Action, res.Reason = ActionSkippedExists, "made by the cluster in every namespace"
		case rs.opts.ExistingResourcePolicy != ExistingUpdate:
			res.Action, res.Reason = ActionSkippedExists, "already exists"
		default:
			rs.update(ctx, ri, it, status)
		}
	default:
		fail("%s", apiErrorText(err))
	}
	if classNote != "" && (res.Action == ActionCreated || res.Action == ActionUpdated) {
		res.Reason = classNote
		rs.warn("%s %s: %s", res.Resource, itemName(*res), classNote)
	}
}

// namespaceGone reports whether the existing namespace name is being
// deleted, and then (except in a dry run) waits until it is gone.
func (rs *restorer) namespaceGone(ctx context.Context, ri dynamic.ResourceInterface, name string) (bool, error) {
	ns, err := ri.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if phase, _, _ := unstructured.NestedString(ns.Object, "status", "phase"); phase != "Terminating" {
		return false, nil
	}
	if rs.opts.DryRun {
		return true, nil
	}
	wctx, cancel := context.WithTimeout(ctx, rs.opts.NamespaceTimeout)
	defer cancel()
	for {
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, fmt.Errorf("namespace %s is still being deleted after %s", name, rs.opts.NamespaceTimeout)
		case <-time.After(250 * time.Millisecond):
		}
		if _, err := ri.Get(wctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return true, nil
		}
	}
}

func (rs *restorer) noteCreatedNamespace(name string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.createdNS == nil {
		rs.createdNS = map[string]bool{}
	}
	rs.createdNS[name] = true
}

// createdNamespace reports whether this restore created namespace name.
func (rs *restorer) createdNamespace(name string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.createdNS[name]
}

// noteDryCreate remembers, in a dry run, namespaces and CRDs that would be
// created.
func (rs *restorer) noteDryCreate(it *restoreItem) {
	if !rs.opts.DryRun || it.result.Action != ActionCreated {
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	switch it.gr {
	case grNamespace:
		if rs.dryNamespaces == nil {
			rs.dryNamespaces = map[string]bool{}
		}
		rs.dryNamespaces[it.obj.GetName()] = true
	case grCRD:
		group, _, _ := unstructured.NestedString(it.obj.Object, "spec", "group")
		plural, _, _ := unstructured.NestedString(it.obj.Object, "spec", "names", "plural")
		if rs.dryGroups == nil {
			rs.dryGroups = map[schema.GroupResource]bool{}
		}
		if rs.api.lookup(schema.GroupResource{Group: group, Resource: plural}) == nil {
			rs.dryGroups[schema.GroupResource{Group: group, Resource: plural}] = true
		}
	}
}

// update brings an existing object to the backed-up state, keeping what
// the cluster allocated (see mergeForUpdate); it retries on conflicts.
func (rs *restorer) update(ctx context.Context, ri dynamic.ResourceInterface, it *restoreItem, status any) {
	res := &it.result
	var err error
	for range 3 {
		var live, updated *unstructured.Unstructured
		live, err = ri.Get(ctx, it.obj.GetName(), metav1.GetOptions{})
		if err != nil {
			break
		}
		desired := mergeForUpdate(it.obj.DeepCopy(), live, it.gr)
		unstructured.RemoveNestedField(desired.Object, "metadata", "managedFields")
		updated, err = ri.Update(ctx, desired, metav1.UpdateOptions{DryRun: rs.dryRun(), FieldManager: restoreFieldManager})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			break
		}
		res.Action = ActionUpdated
		if status != nil {
			rs.writeStatus(ctx, ri, it, updated, status)
		}
		rs.restoreManagedFields(ctx, ri, it)
		return
	}
	res.Action, res.Reason = ActionFailed, "exists; update failed: "+apiErrorText(err)
}

// writeStatus writes the backed-up status through the status subresource.
// A controller may write the object between its create and this write:
// on a conflict the object is read again and the status written anew, a
// few times. A failure leaves the object restored, with a note and a
// warning.
func (rs *restorer) writeStatus(ctx context.Context, ri dynamic.ResourceInterface, it *restoreItem, obj *unstructured.Unstructured, status any) {
	cur := obj
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if cur == nil {
			var err error
			if cur, err = ri.Get(ctx, obj.GetName(), metav1.GetOptions{}); err != nil {
				return err
			}
		}
		if rs.opts.beforeStatus != nil {
			rs.opts.beforeStatus(cur)
		}
		o := cur.DeepCopy()
		cur = nil
		o.Object["status"] = status
		_, err := ri.UpdateStatus(ctx, o, metav1.UpdateOptions{DryRun: rs.dryRun(), FieldManager: restoreFieldManager})
		return err
	})
	if err != nil {
		it.result.Reason = "status not restored: " + apiErrorText(err)
		rs.warn("%s %s: status not restored: %s", it.result.Resource, itemName(it.result), apiErrorText(err))
	}
}

// addEphemeral adds a pod's ephemeral containers through their subresource.
func (rs *restorer) addEphemeral(ctx context.Context, ri dynamic.ResourceInterface, it *restoreItem, pod *unstructured.Unstructured, containers []any) {
	pod = pod.DeepCopy()
	if err := unstructured.SetNestedSlice(pod.Object, containers, "spec", "ephemeralContainers"); err == nil {
		_, err = ri.Update(ctx, pod, metav1.UpdateOptions{FieldManager: restoreFieldManager}, "ephemeralcontainers")
		if err == nil {
			return
		}
		it.result.Reason = "ephemeral containers not restored: " + apiErrorText(err)
		rs.warn("%s %s: ephemeral containers not restored: %s", it.result.Resource, itemName(it.result), apiErrorText(err))
	}
}

// afterCRDs waits until the restored CRDs are served and discovers the
// cluster's resources again, so that custom resources can be restored.
func (rs *restorer) afterCRDs(ctx context.Context, items []*restoreItem) {
	if rs.opts.DryRun {
		return
	}
	var names []string
	for _, it := range items {
		if it.result.Action != ActionFailed {
			names = append(names, it.obj.GetName())
		}
	}
	if len(names) == 0 {
		return
	}
	pending, err := waitCRDs(ctx, rs.cl, names, rs.opts.CRDTimeout)
	if err != nil {
		rs.warn("%v", err)
	}
	if len(pending) > 0 {
		rs.warn("CRDs not served after %s: %s; their custom resources cannot be restored",
			rs.opts.CRDTimeout, strings.Join(pending, ", "))
	}
	api, err := discoverAPI(rs.cl)
	if err != nil {
		rs.warn("discover the API after restoring CRDs: %v", err)
		return
	}
	rs.api = api
}

// apiErrorText is the server's message, without client-go's prefixes.
func apiErrorText(err error) string {
	if st, ok := err.(apierrors.APIStatus); ok && st.Status().Message != "" {
		return st.Status().Message
	}
	return err.Error()
}
