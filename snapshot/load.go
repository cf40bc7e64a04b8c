package snapshot

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cairn-backup/cairn/repo"
	"golang.org/x/sync/errgroup"
)

// snapshotLoads is how many snapshot files are read at once: they are small,
// so over a network the round trip is the cost, and several hide it.
const snapshotLoads = 16

// ErrUnreadableSnapshot is wrapped by the errors for snapshot files that
// cannot be read or decoded.
var ErrUnreadableSnapshot = errors.New("snapshot file cannot be read")

// UnreadableSnapshotError names a snapshot file that cannot be read or
// decoded.
type UnreadableSnapshotError struct {
	ID  repo.ID
	Err error
}

func (e *UnreadableSnapshotError) Error() string {
	// Err names the file (as the repository's load errors do).
	return fmt.Sprintf("snapshot %s cannot be read: %v", e.ID.Str(), e.Err)
}

func (e *UnreadableSnapshotError) Unwrap() []error { return []error{ErrUnreadableSnapshot, e.Err} }

// LoadSnapshot reads one snapshot file. Its errors are
// *UnreadableSnapshotError, unless the context ended.
func LoadSnapshot(ctx context.Context, r *repo.Repository, id repo.ID) (*Snapshot, error) {
	sn := &Snapshot{}
	if err := r.LoadJSONUnpacked(ctx, repo.SnapshotFile, id, sn); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("load snapshot %v: %w", id.Str(), err)
		}
		return nil, &UnreadableSnapshotError{ID: id, Err: err}
	}
	if sn.Tree == nil {
		return nil, &UnreadableSnapshotError{ID: id, Err: fmt.Errorf("snapshot file %s names no tree", id)}
	}
	sn.ID = id
	return sn, nil
}

// SaveSnapshot writes sn and sets sn.ID. Call it only after r.Flush.
func SaveSnapshot(ctx context.Context, r *repo.Repository, sn *Snapshot) (repo.ID, error) {
	id, err := r.SaveJSONUnpacked(ctx, repo.SnapshotFile, sn)
	if err != nil {
		return repo.ID{}, fmt.Errorf("save snapshot: %w", err)
	}
	sn.ID = id
	return id, nil
}

// Filter selects snapshots the way restic's --host/--tag/--path do: any
// host matches, any tag list matches (a list "a,b" needs both tags), and
// the snapshot's paths equal the given paths.
type Filter struct {
	Hosts []string
	Tags  []string
	Paths []string
}

// Match reports whether sn passes the filter.
func (f Filter) Match(sn *Snapshot) bool {
	if len(f.Hosts) > 0 && !slices.Contains(f.Hosts, sn.Hostname) {
		return false
	}
	if len(f.Tags) > 0 {
		ok := false
		for _, list := range f.Tags {
			all := true
			for _, t := range strings.Split(list, ",") {
				if t != "" && !sn.HasTag(t) {
					all = false
					break
				}
			}
			if all {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(f.Paths) > 0 {
		for _, p := range f.Paths {
			if !slices.Contains(sn.Paths, p) {
				return false
			}
		}
	}
	return true
}

// ListSnapshots loads every snapshot that passes f, oldest first.
// Unreadable snapshot files are reported through warn and skipped.
func ListSnapshots(ctx context.Context, r *repo.Repository, f Filter, warn func(error)) ([]*Snapshot, error) {
	var ids []repo.ID
	if err := r.List(ctx, repo.SnapshotFile, func(id repo.ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	out := make([]*Snapshot, len(ids))
	errs := make([]error, len(ids)) // an unreadable file is warned about, not fatal
	var g errgroup.Group
	g.SetLimit(snapshotLoads)
	for i, id := range ids {
		g.Go(func() error {
			out[i], errs[i] = LoadSnapshot(ctx, r, id)
			return nil
		})
	}
	_ = g.Wait() // never fails: every error is in errs
	var res []*Snapshot
	for i, sn := range out {
		if errs[i] != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if warn != nil {
				warn(errs[i])
			}
			continue
		}
		if f.Match(sn) {
			res = append(res, sn)
		}
	}
	slices.SortStableFunc(res, func(a, b *Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	return res, nil
}

// ErrNoSnapshot is returned when "latest" finds nothing.
var ErrNoSnapshot = errors.New("no snapshot found")

// FindSnapshot resolves "latest" (newest passing f) or an ID prefix.
// "latest" is an error (wrapping ErrUnreadableSnapshot and naming the
// file) when any snapshot file cannot be read: that one may be the newest,
// and an older snapshot must not pass for it.
func FindSnapshot(ctx context.Context, r *repo.Repository, spec string, f Filter) (*Snapshot, error) {
	if spec == "latest" {
		sns, bad, err := ListSnapshotsComplete(ctx, r, f)
		if err != nil {
			return nil, err
		}
		if len(bad) > 0 {
			return nil, fmt.Errorf("cannot tell which snapshot is \"latest\": %w; name a snapshot by ID instead, or run `cairn check` and remove the damaged snapshot with `cairn forget %s`",
				UnreadableSummary(bad), bad[0].ID.Str())
		}
		if len(sns) == 0 {
			return nil, fmt.Errorf("%w: the repository has no snapshot matching the filter", ErrNoSnapshot)
		}
		return sns[len(sns)-1], nil
	}
	id, err := r.FindID(ctx, repo.SnapshotFile, spec)
	if err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", spec, err)
	}
	return LoadSnapshot(ctx, r, id)
}

// ListSnapshotsComplete is ListSnapshots for callers that must not pass an
// older snapshot off for a newer one: besides the snapshots that pass f, it
// returns every snapshot file that could not be read (sorted by ID), any
// of which might have passed f. Other errors end it.
func ListSnapshotsComplete(ctx context.Context, r *repo.Repository, f Filter) ([]*Snapshot, []*UnreadableSnapshotError, error) {
	var bad []*UnreadableSnapshotError
	var other error
	sns, err := ListSnapshots(ctx, r, f, func(err error) {
		var ue *UnreadableSnapshotError
		if errors.As(err, &ue) {
			bad = append(bad, ue)
		} else if other == nil {
			other = err
		}
	})
	if err == nil {
		err = other
	}
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(bad, func(a, b *UnreadableSnapshotError) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return sns, bad, nil
}

// UnreadableSummary is an error naming the first of bad (non-empty) and
// how many more there are; it wraps ErrUnreadableSnapshot.
func UnreadableSummary(bad []*UnreadableSnapshotError) error {
	if len(bad) > 1 {
		return fmt.Errorf("%w (and %d more)", bad[0], len(bad)-1)
	}
	return bad[0]
}

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
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(snapshotLoads)
	for i, id := range ids {
		g.Go(func() error {
			sn, err := LoadSnapshot(gctx, r, id)
			if repo.IsNotExist(err) {
				return nil // removed by a concurrent forget
			}
			out[i] = sn
			return err
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return slices.DeleteFunc(out, func(sn *Snapshot) bool { return sn == nil }), nil
}

// LoadTree loads and decodes one tree blob.
func LoadTree(ctx context.Context, r *repo.Repository, id repo.ID) (*Tree, error) {
	buf, err := r.LoadBlob(ctx, repo.TreeBlob, id, nil)
	if err != nil {
		return nil, fmt.Errorf("load tree %v: %w", id.Str(), err)
	}
	t, err := DecodeTree(buf)
	if err != nil {
		return nil, fmt.Errorf("tree %v: %w", id.Str(), err)
	}
	return t, nil
}

// SaveTree encodes and stores a tree, returning its ID.
func SaveTree(ctx context.Context, r *repo.Repository, t *Tree) (repo.ID, error) {
	buf, err := t.Encode()
	if err != nil {
		return repo.ID{}, err
	}
	id, _, _, err := r.SaveBlob(ctx, repo.TreeBlob, buf, repo.ID{})
	return id, err
}

// TreeLoader loads trees through an LRU cache of decoded trees. Trees never
// change, so cached entries never go stale. Safe for concurrent use:
// callers asking for a tree that is being loaded wait for that one load.
type TreeLoader struct {
	r        *repo.Repository
	mu       sync.Mutex
	max      int
	lru      *list.List // of *treeEntry, front = most recent
	items    map[repo.ID]*list.Element
	inflight map[repo.ID]*treeCall
}

type treeEntry struct {
	id   repo.ID
	tree *Tree
}

// treeCall is one load in flight; done is closed when tree or err is set.
type treeCall struct {
	ctx  context.Context
	done chan struct{}
	tree *Tree
	err  error
}

// NewTreeLoader caches up to max decoded trees.
func NewTreeLoader(r *repo.Repository, max int) *TreeLoader {
	if max < 1 {
		max = 1
	}
	return &TreeLoader{r: r, max: max, lru: list.New(), items: map[repo.ID]*list.Element{}, inflight: map[repo.ID]*treeCall{}}
}

// Repository returns the repository trees are loaded from.
func (l *TreeLoader) Repository() *repo.Repository { return l.r }

// cached returns tree id if it is in the cache.
func (l *TreeLoader) cached(id repo.ID) *Tree {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.items[id]; ok {
		l.lru.MoveToFront(e)
		return e.Value.(*treeEntry).tree
	}
	return nil
}

// Tree returns the decoded tree id. Callers must not modify it.
func (l *TreeLoader) Tree(ctx context.Context, id repo.ID) (*Tree, error) {
	for {
		l.mu.Lock()
		if e, ok := l.items[id]; ok {
			l.lru.MoveToFront(e)
			t := e.Value.(*treeEntry).tree
			l.mu.Unlock()
			return t, nil
		}
		c, joined := l.inflight[id]
		if !joined {
			c = &treeCall{ctx: ctx, done: make(chan struct{})}
			l.inflight[id] = c
		}
		l.mu.Unlock()
		if !joined {
			return l.load(c, id)
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("load tree %v: %w", id.Str(), ctx.Err())
		}
		// A load that failed only because its caller gave up says nothing
		// about the tree: load it again for this caller.
		if c.err == nil || c.ctx.Err() == nil || ctx.Err() != nil {
			return c.tree, c.err
		}
	}
}

func (l *TreeLoader) load(c *treeCall, id repo.ID) (*Tree, error) {
	t, err := LoadTree(c.ctx, l.r, id)
	l.mu.Lock()
	c.tree, c.err = t, err
	delete(l.inflight, id)
	if err == nil {
		if _, ok := l.items[id]; !ok {
			l.items[id] = l.lru.PushFront(&treeEntry{id: id, tree: t})
			for l.lru.Len() > l.max {
				old := l.lru.Remove(l.lru.Back()).(*treeEntry)
				delete(l.items, old.id)
			}
		}
	}
	l.mu.Unlock()
	close(c.done)
	return t, err
}

// Add places t in the cache as tree id, as if loaded. Tests use it to plant a
// forged tree that no repository could hold.
func (l *TreeLoader) Add(id repo.ID, t *Tree) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.items[id]; ok {
		e.Value.(*treeEntry).tree = t
		return
	}
	l.items[id] = l.lru.PushFront(&treeEntry{id: id, tree: t})
}
