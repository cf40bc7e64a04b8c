package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cairn-backup/cairn/k8s/layout"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// Resource is one kind of object the API server serves, at the version a
// backup reads it (the group's preferred version where the resource exists
// there).
type Resource struct {
	Group      string
	Version    string
	Resource   string // plural, lower case: "deployments"
	Singular   string
	Kind       string
	ShortNames []string
	Namespaced bool
	Verbs      []string
}

// GVR is the resource's group, version and resource for the dynamic client.
func (r Resource) GVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource}
}

// Dir is "<resource>.<group>" ("<resource>" for the core group), the
// resource's directory in the snapshot and its key in layout.BackupInfo.Items.
func (r Resource) Dir() string { return layout.ResourceDir(r.Resource, r.Group) }

// APIVersion is "group/version", or "version" for the core group.
func (r Resource) APIVersion() string {
	return schema.GroupVersion{Group: r.Group, Version: r.Version}.String()
}

// Listable reports whether objects can be listed and read one by one:
// only those are backed up (reviews, bindings and other create-only kinds
// are not).
func (r Resource) Listable() bool {
	return slices.Contains(r.Verbs, "list") && slices.Contains(r.Verbs, "get")
}

// Discovery is what the API server said it serves.
type Discovery struct {
	Resources []Resource // listable resources, sorted by Dir
	// PreferredVersions maps a group ("" = core) to the version backed up.
	PreferredVersions map[string]string
	// Failed holds the group versions ("group/version") whose resources
	// could not be discovered, with the reason: their objects are missing.
	Failed map[string]error
}

// Find returns the resource whose Dir is dir.
func (d *Discovery) Find(dir string) (Resource, bool) {
	i := sort.Search(len(d.Resources), func(i int) bool { return d.Resources[i].Dir() >= dir })
	if i < len(d.Resources) && d.Resources[i].Dir() == dir {
		return d.Resources[i], true
	}
	return Resource{}, false
}

// Discover asks the server for every resource at its preferred version. A
// group that fails (an aggregated API whose service is down) is recorded in
// Failed and the rest is returned; only a failure to learn anything is an
// error.
func Discover(ctx context.Context, d discovery.DiscoveryInterface) (*Discovery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var lists []*metav1.APIResourceList
	var err error
	if dc, ok := d.(discovery.DiscoveryInterfaceWithContext); ok {
		lists, err = discovery.ServerPreferredResourcesWithContext(ctx, dc)
	} else {
		lists, err = discovery.ServerPreferredResources(d)
	}
	failed := map[string]error{}
	if err != nil {
		groups, ok := discovery.GroupDiscoveryFailedErrorGroups(err)
		if !ok || len(lists) == 0 {
			return nil, fmt.Errorf("discover API resources: %w", err)
		}
		for gv, gerr := range groups {
			failed[gv.String()] = gerr
		}
	}
	res, pref := resourcesFromLists(lists)
	if len(res) == 0 {
		return nil, errors.New("discover API resources: the server lists no resource that can be read")
	}
	return &Discovery{Resources: res, PreferredVersions: pref, Failed: failed}, nil
}

// resourcesFromLists turns discovery lists into listable resources sorted
// by Dir, without subresources, and the version used per group (the one
// most of the group's resources are read at).
func resourcesFromLists(lists []*metav1.APIResourceList) ([]Resource, map[string]string) {
	var out []Resource
	seen := map[string]bool{}
	perGroup := map[string]map[string]int{}
	for _, l := range lists {
		if l == nil {
			continue
		}
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, ar := range l.APIResources {
			if strings.Contains(ar.Name, "/") {
				continue // subresource: status, scale, log, …
			}
			r := Resource{
				Group: gv.Group, Version: gv.Version, Resource: ar.Name,
				Singular: ar.SingularName, Kind: ar.Kind,
				ShortNames: slices.Clone(ar.ShortNames), Namespaced: ar.Namespaced,
				Verbs: slices.Clone([]string(ar.Verbs)),
			}
			if ar.Group != "" || ar.Version != "" { // rare: a resource served from another group version
				r.Group, r.Version = ar.Group, ar.Version
			}
			if !r.Listable() || seen[r.Dir()] {
				continue
			}
			seen[r.Dir()] = true
			out = append(out, r)
			if perGroup[r.Group] == nil {
				perGroup[r.Group] = map[string]int{}
			}
			perGroup[r.Group][r.Version]++
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dir() < out[j].Dir() })
	pref := map[string]string{}
	for g, versions := range perGroup {
		best, n := "", -1
		for v, c := range versions {
			if c > n || (c == n && v < best) {
				best, n = v, c
			}
		}
		pref[g] = best
	}
	return out, pref
}
