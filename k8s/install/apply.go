package install

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/volapi"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// resources maps the kinds an install makes to their API resources.
var resources = map[string]schema.GroupVersionResource{
	"Namespace":                {Version: "v1", Resource: "namespaces"},
	"ServiceAccount":           {Version: "v1", Resource: "serviceaccounts"},
	"Secret":                   {Version: "v1", Resource: "secrets"},
	"CustomResourceDefinition": volapi.CRDResource,
	"ClusterRole":              {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	"ClusterRoleBinding":       {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	"Role":                     {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	"RoleBinding":              {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	"DaemonSet":                {Group: "apps", Version: "v1", Resource: "daemonsets"},
}

// ResourceFor is the dynamic client of an object's kind.
func ResourceFor(dyn dynamic.Interface, o *unstructured.Unstructured) dynamic.ResourceInterface {
	r := dyn.Resource(resources[o.GetKind()])
	if ns := o.GetNamespace(); ns != "" {
		return r.Namespace(ns)
	}
	return r
}

// Describe names an object as kubectl does ("daemonset.apps/cairn-agent").
func Describe(o *unstructured.Unstructured) string {
	s := strings.ToLower(o.GetKind())
	if g := resources[o.GetKind()].Group; g != "" {
		s += "." + g
	}
	return s + "/" + o.GetName()
}

// Apply server-side applies every object (field manager "cairn", taking
// over fields others set: cairn owns what it installs), waits for the
// CRDs to be established, and calls applied after each object. Applying
// the same options again changes nothing; changed options update the
// objects, and fields an earlier apply set and this one does not are
// removed by the API server.
func Apply(ctx context.Context, dyn dynamic.Interface, o Options, dryRun bool, applied func(*unstructured.Unstructured)) error {
	objs, err := Objects(o)
	if err != nil {
		return err
	}
	opts := metav1.ApplyOptions{FieldManager: volapi.FieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	crdsDone := false
	for _, u := range objs {
		if u.GetKind() != "CustomResourceDefinition" && !crdsDone && !dryRun && slices.ContainsFunc(objs, isCRD) {
			// The CRDs go first, established before the agents start
			// (which would only log errors until they are served).
			if err := volapi.Install(ctx, dyn, nil); err != nil {
				return err
			}
			crdsDone = true
		}
		if u.GetKind() == "Namespace" && !dryRun {
			// `uninstall` removed it a moment ago: nothing can be
			// created in it until it is gone.
			wctx, cancel := context.WithTimeout(ctx, volapi.EstablishTimeout)
			err := volapi.WaitNotTerminating(wctx, ResourceFor(dyn, u), u.GetName(), "namespace "+u.GetName())
			cancel()
			if err != nil {
				return err
			}
		}
		if _, err := ResourceFor(dyn, u).Apply(ctx, u.GetName(), u, opts); err != nil {
			return fmt.Errorf("apply %s: %w (installing cairn needs cluster-admin rights)", Describe(u), err)
		}
		if applied != nil {
			applied(u)
		}
	}
	if o.Repository == nil && o.ExistingSecret != SecretName && !dryRun {
		// An earlier install made the Secret this one replaces with the
		// user's: the password must not stay behind.
		return dropSecret(ctx, dyn, o.Namespace)
	}
	return nil
}

func dropSecret(ctx context.Context, dyn dynamic.Interface, ns string) error {
	ri := dyn.Resource(resources["Secret"]).Namespace(ns)
	live, err := ri.Get(ctx, SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil && madeByCairn(live) {
		err = ri.Delete(ctx, SecretName, metav1.DeleteOptions{})
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove the Secret %s/%s of an earlier install: %w", ns, SecretName, err)
	}
	return nil
}

func isCRD(u *unstructured.Unstructured) bool { return u.GetKind() == "CustomResourceDefinition" }

// UninstallOptions say what goes.
type UninstallOptions struct {
	Namespace string
	// CRDs removes the CustomResourceDefinitions too, and with them every
	// VolumeBackup and VolumeRestore in the cluster.
	CRDs bool
}

// Uninstall deletes what Apply made: the objects of the names an install
// uses that carry cairn's label (a Secret the user made stays), the
// namespace if cairn made it (cairn is its only field manager; its
// VolumeBackups and VolumeRestores go with it), and with CRDs the
// CustomResourceDefinitions. The repository is never touched. deleted is
// called for each object deleted; an object already gone is skipped.
func Uninstall(ctx context.Context, dyn dynamic.Interface, uo UninstallOptions, deleted func(*unstructured.Unstructured)) error {
	// Objects needs a complete Options; only names and kinds matter here.
	objs, err := Objects(Options{Namespace: uo.Namespace, Image: "unused", Repository: &Repository{Location: "s3:unused", Password: "unused"}})
	if err != nil {
		return err
	}
	slices.Reverse(objs)
	var errs []error
	for _, want := range objs {
		if want.GetKind() == "CustomResourceDefinition" && !uo.CRDs {
			continue
		}
		ri := ResourceFor(dyn, want)
		live, err := ri.Get(ctx, want.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", Describe(want), err))
			continue
		}
		if !madeByCairn(live) {
			continue
		}
		uid := live.GetUID()
		prop := metav1.DeletePropagationBackground
		err = ri.Delete(ctx, want.GetName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &prop})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", Describe(want), err))
			continue
		}
		if deleted != nil {
			deleted(want)
		}
	}
	return errors.Join(errs...)
}

// madeByCairn: CRDs are cairn's by name; other objects by label; the
// namespace only if no one but cairn ever wrote to it (a namespace the
// user had, and installed into, stays with whatever else it holds).
func madeByCairn(live *unstructured.Unstructured) bool {
	switch live.GetKind() {
	case "CustomResourceDefinition":
		return true
	case "Namespace":
		if live.GetLabels()[labelPartOf] != "cairn" {
			return false
		}
		for _, mf := range live.GetManagedFields() {
			if mf.Manager != volapi.FieldManager {
				return false
			}
		}
		return true
	}
	return live.GetLabels()[labelPartOf] == "cairn"
}

// WaitAgents waits until the DaemonSet runs its current version on every
// node it is scheduled to, or ctx ends.
func WaitAgents(ctx context.Context, dyn dynamic.Interface, ns string) error {
	ri := dyn.Resource(resources["DaemonSet"]).Namespace(ns)
	var last string
	for {
		ds, err := ri.Get(ctx, AgentName, metav1.GetOptions{})
		if err == nil {
			gen := ds.GetGeneration()
			observed, _, _ := unstructured.NestedInt64(ds.Object, "status", "observedGeneration")
			desired, _, _ := unstructured.NestedInt64(ds.Object, "status", "desiredNumberScheduled")
			updated, _, _ := unstructured.NestedInt64(ds.Object, "status", "updatedNumberScheduled")
			ready, _, _ := unstructured.NestedInt64(ds.Object, "status", "numberReady")
			if observed >= gen && updated == desired && ready == desired {
				return nil
			}
			last = fmt.Sprintf("%d of %d agents ready, %d updated", ready, desired, updated)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agents not ready: %s when %v; see `kubectl -n %s describe daemonset %s`", last, ctx.Err(), ns, AgentName)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// WaitGone waits until the objects no longer exist (a namespace lingers
// while its contents are removed), or ctx ends.
func WaitGone(ctx context.Context, dyn dynamic.Interface, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		for {
			_, err := ResourceFor(dyn, o).Get(ctx, o.GetName(), metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s still there when %v; see `kubectl get %s -o yaml`", Describe(o), ctx.Err(), Describe(o))
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}
