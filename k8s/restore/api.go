package restore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/kube"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// apiResource is what the target cluster serves of one resource.
type apiResource struct {
	Versions   []string // served versions, preferred first
	Namespaced bool
	Kind       string
	Singular   string
	ShortNames []string
	HasStatus  bool // has a status subresource
}

// apiResources are the resources the target cluster serves.
type apiResources struct {
	byGR     map[schema.GroupResource]*apiResource
	warnings []string
}

// discoverAPI lists the cluster's resources. Groups that fail discovery
// (an aggregated API that is down) are left out with a warning.
func discoverAPI(cl *kube.Clients) (*apiResources, error) {
	groups, lists, err := cl.Discovery.ServerGroupsAndResources()
	a := &apiResources{byGR: map[schema.GroupResource]*apiResource{}}
	if err != nil {
		if !discovery.IsGroupDiscoveryFailedError(err) || len(lists) == 0 {
			return nil, fmt.Errorf("discover the cluster's API resources: %w", err)
		}
		a.warnings = append(a.warnings, fmt.Sprintf("some API groups could not be discovered: %v", err))
	}
	preferred := map[string]string{}
	for _, g := range groups {
		preferred[g.Name] = g.PreferredVersion.Version
	}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			name, sub, isSub := strings.Cut(r.Name, "/")
			gr := schema.GroupResource{Group: gv.Group, Resource: name}
			ar := a.byGR[gr]
			if ar == nil {
				ar = &apiResource{}
				a.byGR[gr] = ar
			}
			if isSub {
				ar.HasStatus = ar.HasStatus || sub == "status"
				continue
			}
			ar.Namespaced, ar.Kind = r.Namespaced, r.Kind
			ar.Singular, ar.ShortNames = r.SingularName, r.ShortNames
			if gv.Version == preferred[gv.Group] {
				ar.Versions = slices.Insert(ar.Versions, 0, gv.Version)
			} else {
				ar.Versions = append(ar.Versions, gv.Version)
			}
		}
	}
	for gr, ar := range a.byGR {
		if len(ar.Versions) == 0 { // only subresources seen
			delete(a.byGR, gr)
		}
	}
	return a, nil
}

// lookup returns how the cluster serves gr, or nil.
func (a *apiResources) lookup(gr schema.GroupResource) *apiResource { return a.byGR[gr] }

// gvrFor picks the version to write obj with: its own, which the cluster
// must serve (cairn does not convert objects between versions).
func (a *apiResources) gvrFor(gr schema.GroupResource, obj *unstructured.Unstructured) (schema.GroupVersionResource, *apiResource, error) {
	ar := a.lookup(gr)
	if ar == nil {
		return schema.GroupVersionResource{}, nil, fmt.Errorf("the cluster does not serve %s (is its CRD or API service installed?)", grString(gr))
	}
	gv, err := schema.ParseGroupVersion(obj.GetAPIVersion())
	if err != nil {
		return schema.GroupVersionResource{}, nil, fmt.Errorf("apiVersion %q: %w", obj.GetAPIVersion(), err)
	}
	if !slices.Contains(ar.Versions, gv.Version) {
		return schema.GroupVersionResource{}, nil, fmt.Errorf("the cluster does not serve %s at version %s (it serves %s)",
			grString(gr), gv.Version, strings.Join(ar.Versions, ", "))
	}
	return gr.WithVersion(gv.Version), ar, nil
}

// crdServed reports whether a CRD object is Established and its resource
// is listed by discovery at every served version.
func crdServed(cl *kube.Clients, crd *unstructured.Unstructured) (bool, error) {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	established := false
	for _, c := range conds {
		cm, _ := c.(map[string]any)
		if cm["type"] == "Established" && cm["status"] == "True" {
			established = true
		}
	}
	if !established {
		return false, nil
	}
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		vm, _ := v.(map[string]any)
		name, _ := vm["name"].(string)
		if served, _ := vm["served"].(bool); !served || name == "" {
			continue
		}
		list, err := cl.Discovery.ServerResourcesForGroupVersion(group + "/" + name)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == plural }) {
			return false, nil
		}
	}
	return true, nil
}

// waitCRDs waits until the named CRDs are served, polling; it returns the
// names that were not served in time.
func waitCRDs(ctx context.Context, cl *kube.Clients, names []string, timeout time.Duration) ([]string, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ri := cl.Dynamic.Resource(grCRD.WithVersion("v1"))
	pending := slices.Clone(names)
	for {
		var still []string
		for _, name := range pending {
			crd, err := ri.Get(wctx, name, metav1.GetOptions{})
			ok := false
			if err == nil {
				ok, err = crdServed(cl, crd)
			}
			if err != nil && wctx.Err() == nil && !apierrors.IsNotFound(err) {
				return pending, fmt.Errorf("wait for CRD %s: %w", name, err)
			}
			if !ok {
				still = append(still, name)
			}
		}
		pending = still
		if len(pending) == 0 {
			return nil, nil
		}
		select {
		case <-wctx.Done():
			return pending, ctx.Err() // nil when only the wait timed out
		case <-time.After(200 * time.Millisecond):
		}
	}
}
