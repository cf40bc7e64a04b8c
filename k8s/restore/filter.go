package restore

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/k8s/kube"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// restoreFilter selects what a restore takes from a backup. Resource names
// are matched by kube.ResourceFilter, as in a backup; the namespace globs
// apply to the source namespaces (before mapping).
type restoreFilter struct {
	includeNS, excludeNS []string // globs
	resources            kube.ResourceFilter
	status               []string // names of the resources whose status is restored
	selectors            []labels.Selector
}

func newRestoreFilter(o RestoreOptions) (*restoreFilter, error) {
	f := &restoreFilter{
		includeNS: o.IncludeNamespaces, excludeNS: o.ExcludeNamespaces,
		resources: kube.ResourceFilter{Include: trimNames(o.IncludeResources), Exclude: trimNames(o.ExcludeResources)},
		status:    trimNames(o.RestoreStatus),
	}
	for _, p := range append(append([]string{}, o.IncludeNamespaces...), o.ExcludeNamespaces...) {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("namespace pattern %q: %w", p, err)
		}
	}
	for _, s := range append([]string{o.Selector}, o.OrSelectors...) {
		if strings.TrimSpace(s) == "" {
			continue
		}
		sel, err := labels.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("label selector %q: %w", s, err)
		}
		f.selectors = append(f.selectors, sel)
	}
	return f, nil
}

// trimNames drops blank names ("--include-resources svc,").
func trimNames(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// fullNamespaces reports whether no namespace filter narrows the restore.
func (f *restoreFilter) fullNamespaces() bool {
	for _, p := range f.includeNS {
		if p != "*" {
			return false
		}
	}
	return len(f.excludeNS) == 0
}

func matchAnyGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

// namespace reports whether objects in (source) namespace ns are restored.
func (f *restoreFilter) namespace(ns string) bool {
	if len(f.includeNS) > 0 && !matchAnyGlob(f.includeNS, ns) {
		return false
	}
	return !matchAnyGlob(f.excludeNS, ns)
}

// resourceSelected applies --include-resources and --exclude-resources.
func (f *restoreFilter) resourceSelected(r kube.Resource) bool {
	return f.resources.Included(r) && !f.resources.Excluded(r)
}

// keepStatus reports whether --restore-status names r.
func (f *restoreFilter) keepStatus(r kube.Resource) bool {
	return slices.ContainsFunc(f.status, func(n string) bool { return kube.MatchesResource(n, r) })
}

// warnings are the warnings for the resource names (of all three lists)
// that match none of known: one per name, in the words a backup uses.
func (f *restoreFilter) warnings(known []kube.Resource) []string {
	all := kube.ResourceFilter{Include: append(slices.Clone(f.resources.Include), f.status...), Exclude: f.resources.Exclude}
	return all.Warnings(known)
}

// labelsMatch reports whether an object with these labels passes: with
// selectors given, it must match at least one of them.
func (f *restoreFilter) labelsMatch(l map[string]string) bool {
	if len(f.selectors) == 0 {
		return true
	}
	set := labels.Set(l)
	for _, s := range f.selectors {
		if s.Matches(set) {
			return true
		}
	}
	return false
}

// resourceNames are the names filters match a resource by: for each
// resource the target serves, what its discovery says; for each one the
// backup holds that the target does not serve (yet: custom resources
// whose CRD this restore creates), what the backup tells of it.
type resourceNames map[schema.GroupResource]kube.Resource

// of returns the names of gr: at least its plural and group.
func (n resourceNames) of(gr schema.GroupResource) kube.Resource {
	if r, ok := n[gr]; ok {
		return r
	}
	return kube.Resource{Group: gr.Group, Resource: gr.Resource}
}

// list returns them all, for the warnings.
func (n resourceNames) list() []kube.Resource {
	out := make([]kube.Resource, 0, len(n))
	for _, r := range n {
		out = append(out, r)
	}
	return out
}

// newResourceNames gathers the names: api (the target's discovery), the
// resources of the backup's manifests, the kinds of the decoded objects
// (decoded: nil src for those that are not) and the names the decoded
// CRDs give their resources.
func newResourceNames(api *apiResources, manifests []Manifest, decoded []*restoreItem) resourceNames {
	n := resourceNames{}
	for _, m := range manifests {
		gr := m.GroupResource()
		if _, ok := n[gr]; !ok {
			n[gr] = kube.Resource{Group: gr.Group, Resource: gr.Resource}
		}
	}
	for _, it := range decoded {
		if it.src == nil {
			continue
		}
		if r := n.of(it.gr); r.Kind == "" {
			r.Kind = it.src.GetKind()
			n[it.gr] = r
		}
		if it.gr == grCRD {
			if r, ok := crdNames(it.src.Object); ok {
				n[schema.GroupResource{Group: r.Group, Resource: r.Resource}] = r
			}
		}
	}
	if api != nil {
		for gr, ar := range api.byGR {
			n[gr] = kube.Resource{Group: gr.Group, Resource: gr.Resource, Kind: ar.Kind,
				Singular: ar.Singular, ShortNames: ar.ShortNames, Namespaced: ar.Namespaced}
		}
	}
	return n
}

// crdNames reads the names a CRD gives its resource.
func crdNames(crd map[string]any) (kube.Resource, bool) {
	str := func(fields ...string) string {
		s, _, _ := unstructured.NestedString(crd, fields...)
		return s
	}
	r := kube.Resource{
		Group: str("spec", "group"), Resource: str("spec", "names", "plural"),
		Singular: str("spec", "names", "singular"), Kind: str("spec", "names", "kind"),
		Namespaced: str("spec", "scope") == "Namespaced",
	}
	short, _, _ := unstructured.NestedStringSlice(crd, "spec", "names", "shortNames")
	r.ShortNames = short
	return r, r.Resource != "" && r.Group != ""
}
