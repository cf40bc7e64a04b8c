package snapshot

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/cairn-backup/cairn/repo"
)

// LoadAllSnapshots loads every snapshot file, failing on the first one that
// cannot be read: prune must know every snapshot before it deletes data.
// Files that vanished meanwhile are skipped. The result is sorted by ID.
func LoadAllSnapshots(ctx context.Context, r *repo.Repository) ([]*Snapshot, error) {
	var ids []repo.ID
	if err := r.List(ctx, repo.SnapshotFile, func(id repo.ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	slices.SortFunc(ids, func(a, b repo.ID) int { return strings.Compare(a.String(), b.String()) })
	out := make([]*Snapshot, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = LoadSnapshot(ctx, r, id)
			if repo.IsNotExist(errs[i]) {
				errs[i] = nil // removed by a concurrent forget
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(sn *Snapshot) bool { return sn == nil }), nil
}

// UsedBlobs walks the trees of sns and returns every tree and data blob they
// reference. Each tree is loaded once, however many snapshots share it. A
// tree that cannot be loaded or decoded ends the walk with an error naming
// the snapshot and path: a caller that deletes data must not guess.
// progress, if set, is called once per tree visited (from several goroutines).
func UsedBlobs(ctx context.Context, loader *TreeLoader, sns []*Snapshot, progress func()) (map[repo.BlobHandle]struct{}, error) {
	u := &usedWalk{loader: loader, progress: progress, used: map[repo.BlobHandle]struct{}{}}
	u.cond = sync.NewCond(&u.mu)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, sn := range sns {
		if sn.Tree == nil || sn.Tree.IsNull() {
			return nil, fmt.Errorf("snapshot %s has no tree", sn.ID.Str())
		}
		u.add(usedJob{tree: *sn.Tree, sn: sn.ID, path: "/"})
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.work(ctx, cancel)
		}()
	}
	wg.Wait()
	if u.err != nil {
		return nil, u.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return u.used, nil
}

type usedJob struct {
	tree repo.ID
	sn   repo.ID // the first snapshot that reached the tree, for messages
	path string
}

// usedWalk is a LIFO work queue shared by a few workers; used doubles as the
// set of trees already queued.
type usedWalk struct {
	loader   *TreeLoader
	progress func()

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []usedJob
	pending int // queued or being loaded
	used    map[repo.BlobHandle]struct{}
	err     error
}

// add queues a tree unless it is known; call with mu held or before work.
func (u *usedWalk) add(j usedJob) {
	h := repo.BlobHandle{ID: j.tree, Type: repo.TreeBlob}
	if _, ok := u.used[h]; ok {
		return
	}
	u.used[h] = struct{}{}
	u.queue = append(u.queue, j)
	u.pending++
}

func (u *usedWalk) work(ctx context.Context, cancel func()) {
	for {
		u.mu.Lock()
		for len(u.queue) == 0 && u.pending > 0 {
			u.cond.Wait()
		}
		if len(u.queue) == 0 {
			u.mu.Unlock()
			return
		}
		j := u.queue[len(u.queue)-1]
		u.queue = u.queue[:len(u.queue)-1]
		u.mu.Unlock()

		var t *Tree
		err := ctx.Err()
		if err == nil {
			t, err = u.loader.Tree(ctx, j.tree)
		}
		u.mu.Lock()
		if err != nil {
			if u.err == nil && ctx.Err() == nil {
				u.err = fmt.Errorf("snapshot %s: directory %s: tree %s cannot be loaded: %w", j.sn.Str(), showPath(j.path), j.tree.Str(), err)
				cancel()
			}
		} else {
			for _, n := range t.Nodes {
				for _, id := range n.Content {
					u.used[repo.BlobHandle{ID: id, Type: repo.DataBlob}] = struct{}{}
				}
				if n.Subtree != nil && !n.Subtree.IsNull() {
					u.add(usedJob{tree: *n.Subtree, sn: j.sn, path: path.Join(j.path, n.Name)})
				}
			}
		}
		u.pending--
		u.mu.Unlock()
		u.cond.Broadcast()
		if err == nil && u.progress != nil {
			u.progress()
		}
	}
}
