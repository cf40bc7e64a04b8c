// Package fusefs serves a repository's snapshots as a read-only FUSE file
// system:
//
//	snapshots/<time>/...            one directory per snapshot, and "latest"
//	ids/<short id>/...
//	tags/<tag>/<time>/...
//	hosts/<host>/<time>/...
//	namespaces/<ns>/<backup>/resources/...         Kubernetes backups
//	namespaces/<ns>/<backup>/pods/<pod>/<volume>/...
//	namespaces/<ns>/<backup>/pvcs/<claim>/...     the same volumes, by claim
//
// New snapshots show up without remounting: the snapshot list is read
// again when a top-level directory is used and the last look is older than
// Options.RefreshInterval.
package fusefs

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"
)

// Options tune the file system.
type Options struct {
	// RefreshInterval is how old the snapshot list may be before a lookup
	// or listing of a top-level directory reads it again (default 1 s).
	RefreshInterval time.Duration
	// CacheSize is the byte budget of the data blob cache (default
	// browse.DefaultBlobCacheSize).
	CacheSize int64
	// Trees is how many decoded trees are kept (default 8192).
	Trees int
	// ReadAhead is how many blobs after the one a read touches are loaded
	// in the background (default 32, and no more than a quarter of the
	// cache): enough to keep every core decrypting and hashing while the
	// kernel copies what was read, and, over a network, enough bytes in
	// flight to cover the round trips.
	ReadAhead int
	// Warn is told about errors that reach the kernel only as EIO, and
	// about failed refreshes. May be nil.
	Warn func(error)
}

// FS is the file system of one repository.
type FS struct {
	r      *repo.Repository
	loader *snapshot.TreeLoader
	cache  *browse.BlobCache
	opts   Options
	uid    uint32
	gid    uint32

	refreshMu sync.Mutex // one refresh at a time

	mu        sync.Mutex // guards the fields below
	snaps     map[repo.ID]*snapshot.Snapshot
	view      *view
	refreshed time.Time

	k8sMu sync.Mutex
	k8s   map[repo.ID]*k8sInfo // by snapshot ID

	treeMu    sync.Mutex
	treeLoads map[repo.ID]chan struct{} // trees being loaded
	ahead     loadedTrees               // trees loaded ahead of lookups

	prefetch treePrefetcher // trees loaded ahead of directory walks

	damage damageLog // unreadable snapshots and trees, reported once
}

// New loads the repository's index (unless the caller did) and its
// snapshots. Index files written later are loaded when new snapshots show
// up.
func New(ctx context.Context, r *repo.Repository, opts Options) (*FS, error) {
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = time.Second
	}
	if opts.Trees <= 0 {
		opts.Trees = 8192
	}
	if opts.ReadAhead == 0 {
		opts.ReadAhead = 32
	}
	f := &FS{r: r, loader: snapshot.NewTreeLoader(r, opts.Trees), cache: browse.NewBlobCache(r, opts.CacheSize),
		opts: opts, uid: uint32(os.Getuid()), gid: uint32(os.Getgid()),
		snaps: map[repo.ID]*snapshot.Snapshot{}, k8s: map[repo.ID]*k8sInfo{},
		treeLoads: map[repo.ID]chan struct{}{}}
	// The repository tracks which index files it has loaded: this loads
	// all of them, or those written since the caller's LoadIndex; later
	// ones come with refreshes.
	if _, err := r.LoadNewIndexes(ctx); err != nil {
		return nil, err
	}
	if err := f.refresh(ctx, true); err != nil {
		return nil, err
	}
	return f, nil
}

// Snapshots returns the snapshots the file system shows now, oldest first.
func (f *FS) Snapshots() []*snapshot.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.view.sorted
}

func (f *FS) warn(err error) {
	if f.opts.Warn != nil && err != nil {
		f.opts.Warn(err)
	}
}

// currentView returns the view, first reading the snapshot list again if
// it is older than the refresh interval. A failed refresh keeps the old
// view (and is reported through Warn).
func (f *FS) currentView(ctx context.Context) *view {
	f.mu.Lock()
	v, stale := f.view, time.Since(f.refreshed) >= f.opts.RefreshInterval
	f.mu.Unlock()
	if !stale {
		return v
	}
	f.refreshMu.Lock()
	defer f.refreshMu.Unlock()
	f.mu.Lock()
	v, stale = f.view, time.Since(f.refreshed) >= f.opts.RefreshInterval
	f.mu.Unlock()
	if !stale {
		return v // another lookup refreshed meanwhile
	}
	if err := f.refresh(context.WithoutCancel(ctx), false); err != nil {
		f.warn(fmt.Errorf("refresh snapshot list: %w", err))
		f.mu.Lock()
		f.refreshed = time.Now() // do not retry on every lookup
		f.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.view
}

// refresh lists the snapshot files and loads the new ones; when there are
// new ones, index files not loaded yet are loaded first (a snapshot file
// is written after the index that its data needs).
func (f *FS) refresh(ctx context.Context, initial bool) error {
	var ids []repo.ID
	if err := f.r.List(ctx, repo.SnapshotFile, func(id repo.ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	f.mu.Lock()
	var fresh []repo.ID
	current := make(map[repo.ID]bool, len(ids))
	for _, id := range ids {
		current[id] = true
		if f.snaps[id] == nil {
			fresh = append(fresh, id)
		}
	}
	f.mu.Unlock()

	if len(fresh) > 0 || initial {
		if err := f.loadNewIndexes(ctx); err != nil {
			return err
		}
	}
	loaded := make([]*snapshot.Snapshot, 0, len(fresh))
	for _, id := range fresh {
		sn, err := snapshot.LoadSnapshot(ctx, f.r, id)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			f.unreadableSnapshot(id, err)
			continue
		}
		loaded = append(loaded, sn)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	// Unreadable snapshot files are tried again, but change nothing.
	changed := len(loaded) > 0
	for id := range f.snaps {
		if !current[id] {
			delete(f.snaps, id) // forgotten
			changed = true
		}
	}
	for _, sn := range loaded {
		f.snaps[sn.ID] = sn
	}
	if changed || f.view == nil {
		all := make([]*snapshot.Snapshot, 0, len(f.snaps))
		for _, sn := range f.snaps {
			all = append(all, sn)
		}
		f.view = buildView(all)
	}
	f.refreshed = time.Now()
	return nil
}

// loadNewIndexes adds the index files not loaded so far to the
// repository's in-memory index. The index is safe for concurrent use, so
// reads go on meanwhile.
func (f *FS) loadNewIndexes(ctx context.Context) error {
	_, err := f.r.LoadNewIndexes(ctx)
	return err
}

// tree loads a tree through the TreeLoader; concurrent requests for the
// same tree share one load.
func (f *FS) tree(ctx context.Context, id repo.ID) (*snapshot.Tree, error) {
	f.treeMu.Lock()
	if t, ok := f.ahead.trees[id]; ok {
		f.treeMu.Unlock()
		return t, nil
	}
	if ch, ok := f.treeLoads[id]; ok {
		f.treeMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		f.treeMu.Lock()
		t, ok := f.ahead.trees[id]
		f.treeMu.Unlock()
		if ok {
			return t, nil
		}
		return f.loader.Tree(ctx, id) // cached now, unless the load failed
	}
	ch := make(chan struct{})
	f.treeLoads[id] = ch
	f.treeMu.Unlock()
	t, err := f.loader.Tree(ctx, id)
	f.treeMu.Lock()
	delete(f.treeLoads, id)
	f.treeMu.Unlock()
	close(ch)
	return t, err
}
