package fusefs

import (
	"context"
	"fmt"
	"syscall"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// A backup's namespace directory shows each claim's data a second time,
// as pvcs/<claim>: backup.json says which pod volume holds it (a claim
// mounted by several pods is copied once), and the entry is that volume's
// directory node, so both paths show the same tree.

// claimsOf returns the volumes of a backup that hold a claim's data, by
// namespace and claim. backup.json is read once per backup; a failure is
// reported once and tried again on the next listing.
func (f *FS) claimsOf(ctx context.Context, b backup, info *k8sInfo) map[string]map[string][]*layout.VolumeInfo {
	f.k8sMu.Lock()
	claims := info.claims
	f.k8sMu.Unlock()
	if claims != nil {
		return claims
	}
	bi, err := catalog.ReadBackupInfoWith(context.WithoutCancel(ctx), f.loader, f.cache, b.sn)
	if err != nil {
		f.k8sMu.Lock()
		first := !info.claimsFailed
		info.claimsFailed = true
		f.k8sMu.Unlock()
		if first {
			f.warn(fmt.Errorf("namespaces/*/%s/pvcs is not shown: %w", b.name, err))
		}
		return nil
	}
	claims = map[string]map[string][]*layout.VolumeInfo{}
	for i := range bi.Volumes {
		v := &bi.Volumes[i]
		c := v.Claim()
		if c == "" || v.Error != "" || !usableName(c) {
			continue
		}
		if claims[v.Namespace] == nil {
			claims[v.Namespace] = map[string][]*layout.VolumeInfo{}
		}
		claims[v.Namespace][c] = append(claims[v.Namespace][c], v)
	}
	f.k8sMu.Lock()
	info.claims = claims
	f.k8sMu.Unlock()
	return claims
}

// pvcEntries lists namespace ns's claims in backup b, each as the
// directory of the pod volume that holds its files. A claim whose volume
// directory is missing from the snapshot is left out.
func (f *FS) pvcEntries(ctx context.Context, b backup, info *k8sInfo, ns string) ([]ventry, syscall.Errno) {
	nsNode := info.volumes[ns]
	var out []ventry
	for claim, vols := range f.claimsOf(ctx, b, info)[ns] {
		// Of several pods with the claim, the one whose copy is there.
		for _, v := range vols {
			n, bad, err := f.childDir(ctx, nsNode, v.Pod, v.Volume)
			if err != nil {
				f.damagedTree(bad, "namespaces/"+ns+"/"+b.name+"/pvcs/"+claim, err)
				break
			}
			if n != nil {
				out = append(out, ventry{name: claim, kind: kindTree, node: n, ident: b.sn.ID.String() + v.Path()})
				break
			}
		}
	}
	return out, 0
}

// childDir follows names down from directory node d; nil when one is
// missing or not a directory. An error names the tree that failed.
func (f *FS) childDir(ctx context.Context, d *snapshot.Node, names ...string) (*snapshot.Node, repo.ID, error) {
	for _, name := range names {
		if d.Subtree == nil {
			return nil, repo.ID{}, nil
		}
		t, err := f.tree(context.WithoutCancel(ctx), *d.Subtree)
		if err != nil {
			return nil, *d.Subtree, err
		}
		d = t.Find(name)
		if d == nil || d.Type != snapshot.NodeDir {
			return nil, repo.ID{}, nil
		}
	}
	return d, repo.ID{}, nil
}
