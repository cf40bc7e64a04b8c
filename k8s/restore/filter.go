package restore

import (
	"fmt"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// restoreFilter selects what a restore takes from a backup. It overlaps
// with the backup's filter (filter.go); it is kept apart so that restore
// semantics (source namespaces, dependency rules) can differ.
type restoreFilter struct {
	includeNS, excludeNS   []string // globs
	includeRes, excludeRes []string // lower-case resource, resource.group or kind
	selectors              []labels.Selector
	statusRes              []string // resources whose status is restored
}

func lowerNames(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func newRestoreFilter(o RestoreOptions) (*restoreFilter, error) {
	f := &restoreFilter{includeNS: o.IncludeNamespaces, excludeNS: o.ExcludeNamespaces}
	for _, p := range append(append([]string{}, o.IncludeNamespaces...), o.ExcludeNamespaces...) {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("namespace pattern %q: %w", p, err)
		}
	}
	f.includeRes, f.excludeRes = lowerNames(o.IncludeResources), lowerNames(o.ExcludeResources)
	f.statusRes = lowerNames(o.RestoreStatus)
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

// resourceMatches reports whether one of names ("*", resource,
// resource.group or kind, lower case) names gr or kind.
func resourceMatches(names []string, gr schema.GroupResource, kind string) bool {
	for _, n := range names {
		if n == "*" || n == gr.Resource || n == strings.ToLower(grString(gr)) ||
			(kind != "" && n == strings.ToLower(kind)) {
			return true
		}
	}
	return false
}

// resourceIncluded applies --include-resources (kind "" = not known yet:
// then only resource names can match).
func (f *restoreFilter) resourceIncluded(gr schema.GroupResource, kind string) bool {
	return len(f.includeRes) == 0 || resourceMatches(f.includeRes, gr, kind)
}

// resourceExcluded applies --exclude-resources.
func (f *restoreFilter) resourceExcluded(gr schema.GroupResource, kind string) bool {
	return resourceMatches(f.excludeRes, gr, kind)
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
