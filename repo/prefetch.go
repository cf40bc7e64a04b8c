package repo

import (
	"context"
	"sync"
	"time"
)

// Over a network every listing is a round trip. A command that opens the
// repository knows which listings it will make next (locks, snapshots,
// index); with Options.Prefetch, Open sends them while the password's
// scrypt runs, which needs none of them. Each listing is used at most once
// and only where a listing taken that early is correct (see Options).

// prefetchMaxAge is how old a prefetched listing may be when it is used:
// a command that waited longer (--retry-lock) lists again.
const prefetchMaxAge = 30 * time.Second

// listing is one List of a file type taken ahead of its use.
type listing struct {
	done  chan struct{}
	sent  time.Time // when the request went out
	files []FileInfo
	err   error
}

type prefetch struct {
	mu    sync.Mutex
	lists map[FileType]*listing
	all   sync.WaitGroup // the listing goroutines
}

func (l *listing) run(ctx context.Context, be Backend, t FileType) {
	defer close(l.done)
	l.err = be.List(ctx, t, func(fi FileInfo) error {
		l.files = append(l.files, fi)
		return nil
	})
}

// startPrefetch lists locks, and snapshots then index files, in the
// background. Snapshots before the index: a snapshot found in the listing
// then has its index files in the index listing (design.rst's read order).
func startPrefetch(ctx context.Context, be Backend) *prefetch {
	p := &prefetch{lists: map[FileType]*listing{}}
	now := time.Now()
	for _, t := range []FileType{LockFile, SnapshotFile, IndexFile} {
		p.lists[t] = &listing{done: make(chan struct{}), sent: now}
	}
	locks, snaps, idx := p.lists[LockFile], p.lists[SnapshotFile], p.lists[IndexFile]
	p.all.Add(2)
	go func() {
		defer p.all.Done()
		locks.run(ctx, be, LockFile)
	}()
	go func() {
		defer p.all.Done()
		snaps.run(ctx, be, SnapshotFile)
		idx.sent = time.Now()
		idx.run(ctx, be, IndexFile)
	}()
	return p
}

// wait returns once every listing is in. Open waits for them, so that the
// backend is not in use when Open returns (a cache is attached then); with
// scrypt's cost they are in long before.
func (p *prefetch) wait() {
	if p != nil {
		p.all.Wait()
	}
}

// take returns the prefetched listing of t and forgets it, or nil when
// there is none, it failed or it is too old.
func (p *prefetch) take(ctx context.Context, t FileType) []FileInfo {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	l := p.lists[t]
	delete(p.lists, t)
	p.mu.Unlock()
	if l == nil {
		return nil
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		return nil
	}
	if l.err != nil || time.Since(l.sent) > prefetchMaxAge {
		return nil
	}
	if l.files == nil {
		return []FileInfo{} // listed, and empty
	}
	return l.files
}
