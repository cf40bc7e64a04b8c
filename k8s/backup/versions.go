package backup

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Objects of groups that serve several versions are saved at each, laid
// out as layout.VersionManifestPath says, so that a restore into a cluster
// that no longer (or not yet) serves the version read first still finds
// one it serves.

// discoverOtherVersions finds the other versions of the discovered
// resources; a failure costs those copies only (a warning).
func (b *backupRun) discoverOtherVersions(ctx context.Context) {
	others, failed, err := kube.OtherVersions(ctx, b.cl.Discovery, b.disc)
	if err != nil {
		if ctx.Err() == nil {
			b.log.warnf("objects are saved at one version only: %v", err)
		}
		return
	}
	for _, gv := range slices.Sorted(maps.Keys(failed)) {
		if _, done := b.disc.Failed[gv]; !done {
			b.log.warnf("discovery of %s failed; its objects are not saved at that version: %v", gv, failed[gv])
		}
	}
	b.others = others
}

// saveOtherVersions reads the resources of the backup again at their
// other versions and saves the objects that are in the backup. A list that
// fails costs that version's copies only (a warning).
func (b *backupRun) saveOtherVersions(ctx context.Context) error {
	for _, r := range b.others {
		namespaces := b.store.dirNamespaces(r.Dir())
		if len(namespaces) == 0 {
			continue
		}
		if !r.Namespaced || len(namespaces) > 8 {
			namespaces = []string{""}
		}
		start, n := time.Now(), 0
		for _, ns := range namespaces {
			err := b.list(ctx, r, ns, "", func(obj *unstructured.Unstructured) error {
				objNS := ""
				if r.Namespaced {
					objNS = obj.GetNamespace()
				}
				if !b.store.saved(layout.ManifestPath(objNS, r.Resource, r.Group, obj.GetName())) {
					return nil // not selected, or made since
				}
				n++
				return b.saveVersion(ctx, r, objNS, obj)
			})
			switch {
			case ctx.Err() != nil:
				return context.Cause(ctx)
			case err != nil:
				b.log.warnf("list %s at version %s: %v; its objects are saved at %s only", r.Dir(), r.Version, err, b.disc.PreferredVersions[r.Group])
			}
		}
		if n > 0 {
			b.info.ResourceVersions[r.Dir()] = append(b.info.ResourceVersions[r.Dir()], r.Version)
		}
		b.log.logf("%s: %s saved at version %s too (%s)", r.Dir(), countObjects(n), r.Version, since(start))
	}
	return nil
}

// saveVersion stores one object's manifest at another version.
func (b *backupRun) saveVersion(ctx context.Context, r kube.Resource, ns string, obj *unstructured.Unstructured) error {
	name := obj.GetName()
	if !b.store.claim(layout.VersionManifestPath(r.Group, r.Version, ns, r.Resource, name)) {
		return nil
	}
	buf, err := yaml.Marshal(obj.Object)
	if err != nil {
		return fmt.Errorf("encode %s/%s at %s: %w", r.Dir(), name, r.Version, err)
	}
	content, size, err := b.a.SaveReader(ctx, bytes.NewReader(buf))
	if err != nil {
		return fmt.Errorf("save %s/%s at %s: %w", r.Dir(), name, r.Version, err)
	}
	b.store.addVersion(r.Group, r.Version, ns, r.Dir(), fileNode(name+".yaml", content, size, b.when))
	return nil
}
