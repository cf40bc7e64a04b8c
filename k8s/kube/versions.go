package kube

import (
	"context"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// OtherVersions returns the discovered resources again at every other
// version their group serves (a CRD serving v1 and v2, autoscaling v1 and
// v2), in the server's order of preference per group, so that a backup can
// save them at each: a target cluster may not serve the version a backup
// read them at. Group versions whose discovery failed are returned with
// the reason; an error means the groups could not be read at all.
func OtherVersions(ctx context.Context, dc discovery.DiscoveryInterface, d *Discovery) ([]Resource, map[string]error, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	groups, err := dc.ServerGroups()
	if err != nil {
		return nil, nil, fmt.Errorf("discover API groups: %w", err)
	}
	failed := map[string]error{}
	var lists []*metav1.APIResourceList
	for _, g := range groups.Groups {
		if len(g.Versions) < 2 {
			continue
		}
		for _, v := range g.Versions {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			l, err := dc.ServerResourcesForGroupVersion(v.GroupVersion)
			if err != nil {
				failed[v.GroupVersion] = err
				continue
			}
			lists = append(lists, l)
		}
	}
	return otherVersionsFrom(d, lists), failed, nil
}

// otherVersionsFrom picks from discovery lists the listable resources of d
// at versions other than the one d holds them at, in the lists' order
// within each resource, sorted by Dir.
func otherVersionsFrom(d *Discovery, lists []*metav1.APIResourceList) []Resource {
	var out []Resource
	seen := map[string]bool{}
	for _, l := range lists {
		if l == nil {
			continue
		}
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, ar := range l.APIResources {
			if strings.Contains(ar.Name, "/") || (ar.Group != "" && ar.Group != gv.Group) || (ar.Version != "" && ar.Version != gv.Version) {
				continue
			}
			main, ok := d.Find(Resource{Group: gv.Group, Resource: ar.Name}.Dir())
			if !ok || main.Version == gv.Version {
				continue
			}
			r := main
			r.Version = gv.Version
			r.Verbs = append([]string(nil), ar.Verbs...)
			if !r.Listable() || seen[r.Dir()+"@"+r.Version] {
				continue
			}
			seen[r.Dir()+"@"+r.Version] = true
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Dir() < out[j].Dir() })
	return out
}
