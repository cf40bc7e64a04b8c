package restore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/snapshot"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
)

// A backup holds the objects of groups that serve several versions at
// each of them (layout.VersionManifestPath). A restore writes each object
// at the best version the target serves: the target's preferred one, then
// the version the backup read it at, then any other the target serves, in
// the target's order. cairn never converts objects itself: a version is
// usable only when the backup holds the object at it.

// listOtherVersions attaches the copies under /resource-versions to the
// manifests they are copies of. Files that name no manifest of the backup,
// or sit in a group directory that is not their group's, are ignored.
func (s *BackupSource) listOtherVersions(ctx context.Context, loader *snapshot.TreeLoader) error {
	root, err := snapshot.FindNode(ctx, loader, *s.Snapshot.Tree, "/"+layout.ResourceVersionsDir)
	if errors.Is(err, snapshot.ErrPathNotFound) {
		return nil // a backup of a cluster that serves one version per group, or an older one
	}
	if err != nil {
		return fmt.Errorf("read backup %s: %w", s.Snapshot.ID.Str(), err)
	}
	if root.Type != snapshot.NodeDir || root.Subtree == nil {
		return nil
	}
	listed := make(map[string]bool, len(s.Manifests))
	for _, m := range s.Manifests {
		listed[m.Path] = true
	}
	s.others = map[string]map[string]*snapshot.Node{}
	err = snapshot.Walk(ctx, loader, *root.Subtree, func(p string, n *snapshot.Node) error {
		if n.Type != snapshot.NodeFile {
			return nil
		}
		m, ver, ok := parseVersionPath(p)
		if !ok {
			return nil
		}
		if !listed[m.Path] {
			return nil
		}
		if s.others[m.Path] == nil {
			s.others[m.Path] = map[string]*snapshot.Node{}
		}
		s.others[m.Path][ver] = n
		return nil
	})
	if err != nil {
		return fmt.Errorf("list the other API versions of backup %s: %w", s.Snapshot.ID.Str(), err)
	}
	return nil
}

// parseVersionPath undoes VersionManifestPath for a path below
// /resource-versions ("/<group>/<version>/cluster/…"): it returns the
// manifest of the /resources copy and the version.
func parseVersionPath(p string) (Manifest, string, bool) {
	g, rest, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	ver, rest, _ := strings.Cut(rest, "/")
	if g == "" || ver == "" || rest == "" || strings.Contains(ver, ".") {
		return Manifest{}, "", false
	}
	m, ok := ParseManifestPath("/" + layout.ResourcesDir + "/" + rest)
	if !ok {
		return Manifest{}, "", false
	}
	if want := m.Group; (want == "" && g != layout.CoreGroupDir) || (want != "" && g != want) {
		return Manifest{}, "", false
	}
	return m, ver, true
}

// Versions lists the versions the backup holds the manifest's object at:
// the /resources copy's (at) first, then the others, sorted.
func (s *BackupSource) Versions(m Manifest, at string) []string {
	out := []string{at}
	for _, v := range slices.Sorted(maps.Keys(s.others[m.Path])) {
		if v != at {
			out = append(out, v)
		}
	}
	return out
}

// chooseVersion picks the version to restore at from what the backup
// holds (have: the source's version first) and what the target serves
// (served: its preferred version first). ok is false when none is both.
func chooseVersion(have, served []string) (string, bool) {
	if len(have) == 0 || len(served) == 0 {
		return "", false
	}
	if slices.Contains(have, served[0]) {
		return served[0], true
	}
	if slices.Contains(served, have[0]) {
		return have[0], true
	}
	for _, v := range served {
		if slices.Contains(have, v) {
			return v, true
		}
	}
	return "", false
}

// crdServedVersions lists the versions a CRD object serves, preferred
// first, ordered as the API server orders a group's versions (GA before
// beta before alpha, higher first).
func crdServedVersions(crd *unstructured.Unstructured) []string {
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	var out []string
	for _, v := range versions {
		vm, _ := v.(map[string]any)
		name, _ := vm["name"].(string)
		if served, _ := vm["served"].(bool); served && name != "" {
			out = append(out, name)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return -version.CompareKubeAwareVersionStrings(a, b) })
	return out
}

// servedVersions says which versions of gr the target will serve when
// the item is written: what it serves now, or what the backup's CRD for
// gr serves when the restore creates that CRD first.
func (rs *restorer) servedVersions(gr schema.GroupResource, crds map[string]*restoreItem) []string {
	if ar := rs.api.lookup(gr); ar != nil {
		return ar.Versions
	}
	if gr.Group == "" {
		return nil
	}
	if it := crds[gr.Resource+"."+gr.Group]; it != nil && it.src != nil {
		return crdServedVersions(it.src)
	}
	return nil
}

// chooseVersions reads again, at another version, the objects whose
// /resources copy is at a version the target will not serve or does not
// prefer. An object the backup holds at no version the target serves
// fails, naming the versions on both sides.
func (rs *restorer) chooseVersions(ctx context.Context, items []*restoreItem) {
	crds := map[string]*restoreItem{}
	for _, it := range items {
		if it.gr == grCRD {
			crds[it.m.Name] = it
		}
	}
	for _, it := range items {
		if ctx.Err() != nil {
			return
		}
		if it.src == nil || len(rs.src.others[it.m.Path]) == 0 {
			continue
		}
		gv, err := schema.ParseGroupVersion(it.src.GetAPIVersion())
		if err != nil {
			continue
		}
		have := rs.src.Versions(it.m, gv.Version)
		served := rs.servedVersions(it.gr, crds)
		v, ok := chooseVersion(have, served)
		if !ok {
			if len(served) > 0 {
				it.src, it.err = nil, fmt.Errorf("the cluster serves %s at %s; the backup holds it at %s only (cairn does not convert between versions)",
					grString(it.gr), strings.Join(served, ", "), strings.Join(have, ", "))
			}
			continue
		}
		if v == gv.Version {
			continue
		}
		obj, err := rs.src.objectAt(ctx, it.m, v)
		if err != nil {
			it.src, it.err = nil, err
			continue
		}
		it.src = obj
	}
}

// objectAt reads the manifest's object at another version and checks that
// it is the object, at that version.
func (s *BackupSource) objectAt(ctx context.Context, m Manifest, ver string) (*unstructured.Unstructured, error) {
	n := s.others[m.Path][ver]
	if n == nil {
		return nil, fmt.Errorf("%s: the backup does not hold it at version %s", m.Path, ver)
	}
	p := layout.VersionManifestPath(m.Group, ver, m.Namespace, m.Resource, m.Name)
	buf, err := s.readNode(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	at := m
	at.Path = p
	obj, err := decodeManifest(at, buf)
	if err != nil {
		return nil, err
	}
	if gv, _ := schema.ParseGroupVersion(obj.GetAPIVersion()); gv.Version != ver {
		return nil, fmt.Errorf("%s holds a %s object, not one at version %s", p, obj.GetAPIVersion(), ver)
	}
	return obj, nil
}
