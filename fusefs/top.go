package fusefs

import (
	"context"
	"errors"
	"slices"
	"syscall"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/snapshot"
)

// The top-level directories are virtual: their entries are computed from
// the current view on every lookup and listing.

func (f *FS) rootEntries(ctx context.Context) ([]ventry, syscall.Errno) {
	return []ventry{
		{name: "hosts", kind: kindVirt, list: f.hostsEntries},
		{name: "ids", kind: kindVirt, list: f.idsEntries},
		{name: "namespaces", kind: kindVirt, list: f.namespacesEntries},
		{name: "snapshots", kind: kindVirt, list: f.snapshotsEntries},
		{name: "tags", kind: kindVirt, list: f.tagsEntries},
	}, 0
}

func snapshotEntry(name string, sn *snapshot.Snapshot) ventry {
	return ventry{name: name, kind: kindTree, node: snapshotRoot(sn), ident: sn.ID.String()}
}

// timeEntries lists snapshots (oldest first) by their time names, plus a
// "latest" symlink to the newest.
func timeEntries(sns []*snapshot.Snapshot, names []string, latest bool) []ventry {
	out := make([]ventry, 0, len(sns)+1)
	for i, sn := range sns {
		out = append(out, snapshotEntry(names[i], sn))
	}
	if latest && len(sns) > 0 {
		out = append(out, ventry{name: "latest", kind: kindLink, target: names[len(names)-1], ident: names[len(names)-1]})
	}
	return out
}

func (f *FS) snapshotsEntries(ctx context.Context) ([]ventry, syscall.Errno) {
	v := f.currentView(ctx)
	return timeEntries(v.sorted, v.names, true), 0
}

func (f *FS) idsEntries(ctx context.Context) ([]ventry, syscall.Errno) {
	v := f.currentView(ctx)
	out := make([]ventry, 0, len(v.ids))
	for id, sn := range v.ids {
		out = append(out, snapshotEntry(id, sn))
	}
	return out, 0
}

// groupEntries lists the groups (tags or hosts) as directories of
// time-named snapshots.
func (f *FS) groupEntries(groups func(*view) map[string][]*snapshot.Snapshot) func(context.Context) ([]ventry, syscall.Errno) {
	return func(ctx context.Context) ([]ventry, syscall.Errno) {
		v := f.currentView(ctx)
		out := make([]ventry, 0, len(groups(v)))
		for name := range groups(v) {
			out = append(out, ventry{name: name, kind: kindVirt, list: func(ctx context.Context) ([]ventry, syscall.Errno) {
				sns := groups(f.currentView(ctx))[name]
				return timeEntries(sns, timeNames(sns), true), 0
			}})
		}
		return out, 0
	}
}

func (f *FS) tagsEntries(ctx context.Context) ([]ventry, syscall.Errno) {
	return f.groupEntries(func(v *view) map[string][]*snapshot.Snapshot { return v.tags })(ctx)
}

func (f *FS) hostsEntries(ctx context.Context) ([]ventry, syscall.Errno) {
	return f.groupEntries(func(v *view) map[string][]*snapshot.Snapshot { return v.hosts })(ctx)
}

// k8sInfo is where a Kubernetes backup snapshot keeps each namespace:
// /resources/namespaces/<ns> and /volumes/<ns>; and, once read from
// backup.json, which volumes hold each claim (guarded by FS.k8sMu, as is
// claimsFailed: reading backup.json failed and was reported).
type k8sInfo struct {
	resources    map[string]*snapshot.Node
	volumes      map[string]*snapshot.Node
	claims       map[string]map[string][]*layout.VolumeInfo // ns -> claim
	claimsFailed bool
}

func (f *FS) k8sOf(ctx context.Context, sn *snapshot.Snapshot) (*k8sInfo, error) {
	f.k8sMu.Lock()
	info := f.k8s[sn.ID]
	f.k8sMu.Unlock()
	if info != nil {
		return info, nil
	}
	info = &k8sInfo{resources: map[string]*snapshot.Node{}, volumes: map[string]*snapshot.Node{}}
	for dir, into := range map[string]map[string]*snapshot.Node{layout.NamespaceResourcesPath: info.resources, layout.VolumesPath: info.volumes} {
		n, err := snapshot.FindNode(ctx, f.loader, *sn.Tree, dir)
		if errors.Is(err, snapshot.ErrPathNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n.Type != snapshot.NodeDir || n.Subtree == nil {
			continue
		}
		t, err := f.loader.Tree(ctx, *n.Subtree)
		if err != nil {
			return nil, err
		}
		for _, c := range t.Nodes {
			if c.Type == snapshot.NodeDir && c.Subtree != nil {
				into[c.Name] = c
			}
		}
	}
	f.k8sMu.Lock()
	f.k8s[sn.ID] = info
	f.k8sMu.Unlock()
	return info, nil
}

// backupsIn groups the backups of v (with their directory names) by the
// namespaces they hold.
// Backups whose trees cannot be read are left out (and logged once).
func (f *FS) backupsIn(ctx context.Context, v *view) (map[string][]backup, syscall.Errno) {
	byNS := map[string][]backup{}
	for _, b := range v.backups {
		info, err := f.k8sOf(context.WithoutCancel(ctx), b.sn)
		if err != nil {
			// One damaged backup is left out; the others are still shown.
			f.damagedTree(*b.sn.Tree, "namespaces (backup "+b.name+")", err)
			continue
		}
		for ns := range info.resources {
			byNS[ns] = append(byNS[ns], b)
		}
		for ns := range info.volumes {
			if _, ok := info.resources[ns]; !ok {
				byNS[ns] = append(byNS[ns], b)
			}
		}
	}
	return byNS, 0
}

func (f *FS) namespacesEntries(ctx context.Context) ([]ventry, syscall.Errno) {
	byNS, errno := f.backupsIn(ctx, f.currentView(ctx))
	if errno != 0 {
		return nil, errno
	}
	out := make([]ventry, 0, len(byNS))
	for ns := range byNS {
		out = append(out, ventry{name: ns, kind: kindVirt, list: func(ctx context.Context) ([]ventry, syscall.Errno) {
			return f.namespaceEntries(ctx, ns)
		}})
	}
	return out, 0
}

// namespaceEntries lists the backups holding ns; each has "resources",
// "pods" (the volumes by pod) and "pvcs" (the same volumes by claim).
func (f *FS) namespaceEntries(ctx context.Context, ns string) ([]ventry, syscall.Errno) {
	byNS, errno := f.backupsIn(ctx, f.currentView(ctx))
	if errno != 0 {
		return nil, errno
	}
	var out []ventry
	for _, b := range byNS[ns] {
		info, err := f.k8sOf(context.WithoutCancel(ctx), b.sn)
		if err != nil {
			continue // reported by backupsIn
		}
		var sub []ventry
		if n := info.resources[ns]; n != nil {
			sub = append(sub, ventry{name: "resources", kind: kindTree, node: n, ident: b.sn.ID.String() + layout.NamespaceResourcesPath + "/" + ns})
		}
		if n := info.volumes[ns]; n != nil {
			sub = append(sub, ventry{name: "pods", kind: kindTree, node: n, ident: b.sn.ID.String() + layout.VolumesPath + "/" + ns})
			if len(f.claimsOf(ctx, b, info)[ns]) > 0 {
				sub = append(sub, ventry{name: "pvcs", kind: kindVirt, ident: b.sn.ID.String() + "/pvcs/" + ns,
					list: func(ctx context.Context) ([]ventry, syscall.Errno) { return f.pvcEntries(ctx, b, info, ns) }})
			}
		}
		out = append(out, ventry{name: b.name, kind: kindVirt, ident: b.sn.ID.String(),
			list: func(context.Context) ([]ventry, syscall.Errno) { return sub, 0 }})
	}
	return out, 0
}

// sortEntries orders entries by name (listings must be deterministic).
func sortEntries(es []ventry) {
	slices.SortFunc(es, func(a, b ventry) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
}
