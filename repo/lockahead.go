package repo

import (
	"context"
	"fmt"
	"time"
)

// A lock taken ahead: the lock file is written and checked in the
// background while the caller goes on reading (the index, the parent
// snapshot's trees, the files to back up). Over a network that hides three
// round trips: the lock file, the listing that checks it, and the index
// listing that confirms what was read before. Until the lock is confirmed
// nothing is written: every write (packs, index, snapshot) waits for it
// (awaitLocks) and fails if it failed.
//
// Why reading first is safe: a prune removes packs only while its exclusive
// lock is in place. Once our lock file is written and the listing after it
// shows no exclusive lock, no prune can start until we unlock, and any that
// ran before has finished. A prune that removes indexed packs also removes
// or replaces the index files naming them, so an index file read before
// the lock is trusted only if a listing taken after the check still has
// it (verifyIndex); if one is gone, the writes fail and the command is run
// again.

// ErrIndexChanged is returned for writes after the index was replaced
// (pruned or repaired) while a lock was taken ahead.
var ErrIndexChanged = fmt.Errorf("the repository's index was replaced while the lock was being taken")

// LockAhead takes a lock like Lock, but returns once a first look at the
// locks (Open's prefetched listing, when there is one) shows none in the
// way; the lock file is written and checked in the background. Writes wait
// for it, and fail with its error if it turns out the repository is
// locked. Unlock works as for Lock.
func (r *Repository) LockAhead(ctx context.Context, exclusive bool) (*Lock, error) {
	l := &Lock{r: r, exclusive: exclusive}
	if r.opts.ReadOnly {
		return l, nil
	}
	if err := r.conflict(ctx, exclusive, ID{}, true); err != nil {
		return nil, err
	}
	l.ready = make(chan struct{})
	l.refreshed = time.Now() // before the lock file's own time
	r.locksMu.Lock()
	if r.locks == nil {
		r.locks = map[*Lock]bool{}
	}
	r.locks[l] = true
	r.locksMu.Unlock()
	go l.confirm(ctx)
	return l, nil
}

// confirm writes the lock file, checks for conflicting locks, and lists the
// index files as they are now that no prune can start.
func (l *Lock) confirm(ctx context.Context) {
	defer close(l.ready)
	r := l.r
	id, err := r.saveLock(ctx, l.exclusive)
	if err != nil {
		l.err = fmt.Errorf("create lock: %w", err)
		return
	}
	l.mu.Lock()
	l.id = id
	l.mu.Unlock()
	// Once the lock file is stored no prune can start, so the index can
	// be listed while other locks are checked: one round trip, not two.
	type listed struct {
		ids []ID
		err error
	}
	index := make(chan listed, 1)
	go func() {
		ids, _, err := r.listIndexFiles(ctx)
		index <- listed{ids, err}
	}()
	cerr := r.conflict(ctx, l.exclusive, id, false)
	idx := <-index
	if cerr != nil {
		l.err = cerr
	} else if idx.err != nil {
		l.err = idx.err
	} else {
		ids := idx.ids
		l.indexAfter = make(map[ID]bool, len(ids))
		for _, id := range ids {
			l.indexAfter[id] = true
		}
	}
	if l.err != nil {
		_ = r.be.Remove(context.WithoutCancel(ctx), Handle{Type: LockFile, Name: id.String()})
		return
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.refresh(context.WithoutCancel(ctx))
}

// pendingLocks reports whether a lock taken ahead is not confirmed yet.
func (r *Repository) pendingLocks() bool {
	r.locksMu.Lock()
	defer r.locksMu.Unlock()
	for l := range r.locks {
		if l.ready != nil && !l.isReady() {
			return true
		}
	}
	return false
}

func (l *Lock) isReady() bool {
	select {
	case <-l.ready:
		return true
	default:
		return false
	}
}

// AwaitLocks is awaitLocks for commands that only read: they call it
// before they act on what they read under a lock taken ahead (a restore,
// before it writes its first file). On ErrIndexChanged, load the snapshot
// and the index again: the lock is confirmed, so the new listings count.
func (r *Repository) AwaitLocks(ctx context.Context) error { return r.awaitLocks(ctx) }

// awaitLocks waits until the locks taken ahead are confirmed and the index
// read before that is verified; every write but a lock file's calls it.
func (r *Repository) awaitLocks(ctx context.Context) error {
	r.locksMu.Lock()
	var ahead []*Lock
	for l := range r.locks {
		if l.ready != nil {
			ahead = append(ahead, l)
		}
	}
	r.locksMu.Unlock()
	checked := true
	for _, l := range ahead {
		select {
		case <-l.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
		if l.err != nil {
			return l.err
		}
		checked = checked && l.indexChecked.Load()
	}
	if checked {
		// Index files are loaded early only while a lock taken ahead
		// is unconfirmed: none since these were checked.
		return nil
	}
	if err := r.verifyIndex(ctx, ahead[0].indexAfter); err != nil {
		return err
	}
	for _, l := range ahead {
		l.indexChecked.Store(true)
	}
	return nil
}

// verifyIndex checks that every index file loaded from a listing taken
// before a lock was confirmed is still there after (see ErrIndexChanged);
// after is a listing taken then. Files missing from it may be newer than
// it: only those missing from a new listing count as gone.
func (r *Repository) verifyIndex(ctx context.Context, after map[ID]bool) error {
	r.idxMu.Lock()
	defer r.idxMu.Unlock()
	if len(r.idxEarly) == 0 {
		return nil
	}
	var missing []ID
	for _, id := range r.idxEarly {
		if !after[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		_, now, err := r.listIndexFiles(ctx)
		if err != nil {
			return err
		}
		for _, id := range missing {
			if _, ok := now[id]; !ok {
				return fmt.Errorf("%w (index file %v is gone: a prune or repair ran); nothing was saved: run the command again", ErrIndexChanged, id.Str())
			}
		}
	}
	r.idxEarly = nil
	return nil
}
