package checker

import (
	"context"
	"fmt"
	"path"
	"sync"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// UsedBlobs walks the trees of sns and returns every tree and data blob they
// reference. Each tree is loaded once, however many snapshots share it. A
// tree that cannot be loaded or decoded ends the walk with an error naming
// the snapshot and path: a caller that deletes data must not guess.
// progress, if set, is called once per tree visited (from several goroutines).
func UsedBlobs(ctx context.Context, loader *snapshot.TreeLoader, sns []*snapshot.Snapshot, progress func()) (map[repo.BlobHandle]struct{}, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var roots []treeJob
	for _, sn := range sns {
		if sn.Tree == nil || sn.Tree.IsNull() {
			return nil, fmt.Errorf("snapshot %s has no tree", sn.ID.Str())
		}
		roots = append(roots, treeJob{id: *sn.Tree, sn: sn.ID, path: "/"})
	}
	var mu sync.Mutex
	used := map[repo.BlobHandle]struct{}{}
	var firstErr error
	walkTrees(ctx, roots, snapshot.TreeLoadConcurrency, func(j treeJob) []treeJob {
		t, err := loader.Tree(ctx, j.id)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if firstErr == nil && ctx.Err() == nil {
				firstErr = fmt.Errorf("snapshot %s: directory %s: tree %s cannot be loaded: %w", j.sn.Str(), showPath(j.path), j.id.Str(), err)
				cancel()
			}
			return nil
		}
		used[repo.BlobHandle{ID: j.id, Type: repo.TreeBlob}] = struct{}{}
		var subs []treeJob
		for _, n := range t.Nodes {
			for _, id := range n.Content {
				used[repo.BlobHandle{ID: id, Type: repo.DataBlob}] = struct{}{}
			}
			if n.Subtree != nil && !n.Subtree.IsNull() {
				subs = append(subs, treeJob{id: *n.Subtree, sn: j.sn, path: path.Join(j.path, n.Name)})
			}
		}
		if progress != nil {
			progress()
		}
		return subs
	})
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return used, nil
}
