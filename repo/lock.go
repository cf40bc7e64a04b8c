package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// LockFile is restic's lock document.
type LockJSON struct {
	Time      time.Time `json:"time"`
	Exclusive bool      `json:"exclusive"`
	Hostname  string    `json:"hostname"`
	Username  string    `json:"username"`
	PID       int       `json:"pid"`
	UID       uint32    `json:"uid,omitempty"`
	GID       uint32    `json:"gid,omitempty"`
}

const (
	// StaleLockAge is when a lock that was not refreshed counts as abandoned.
	StaleLockAge = 30 * time.Minute
	// lockRefresh keeps held locks well inside StaleLockAge.
	lockRefresh = 5 * time.Minute
)

// ErrLocked is returned when a conflicting lock is held.
var ErrLocked = errors.New("repository is locked")

// ErrLockLost is returned for writes after this process's lock went
// unrefreshed so long that others may have taken it for stale (the process
// was paused or the machine slept): a prune may have run meanwhile.
var ErrLockLost = errors.New("the repository lock was not refreshed in time")

// lockLostAfter is how long a lock may go unrefreshed before this process
// stops writing under it; it leaves a margin below StaleLockAge.
const lockLostAfter = StaleLockAge - lockRefresh

// Stale reports whether the lock was abandoned: too old, or made on this
// host by a process that no longer runs.
func (l *LockJSON) Stale(now time.Time) bool {
	if now.Sub(l.Time) > StaleLockAge {
		return true
	}
	host, _ := os.Hostname()
	if l.Hostname != host || l.PID <= 0 {
		return false
	}
	err := syscall.Kill(l.PID, 0)
	return errors.Is(err, syscall.ESRCH)
}

func (l *LockJSON) String() string {
	kind := "shared"
	if l.Exclusive {
		kind = "exclusive"
	}
	return fmt.Sprintf("%s lock by %s@%s (PID %d), created %s ago", kind, l.Username, l.Hostname, l.PID, time.Since(l.Time).Round(time.Second))
}

// Lock is a lock held by this process; it refreshes itself until Unlock.
type Lock struct {
	r         *Repository
	exclusive bool
	mu        sync.Mutex
	id        ID
	stop      chan struct{}
	done      chan struct{}
	refreshed time.Time // when the lock file in place was written
	lost      bool

	// Set by LockAhead: ready is closed once the lock file is written and
	// checked (err says why not); indexAfter lists the index files then.
	ready        chan struct{}
	err          error
	indexAfter   map[ID]bool
	indexChecked atomic.Bool // verifyIndex passed once it was ready
}

// gap is how long the lock went unrefreshed, by the monotonic and the wall
// clock (which also runs while the machine sleeps), whichever is longer.
func (l *Lock) gap(now time.Time) time.Duration {
	return max(now.Sub(l.refreshed), now.Round(0).Sub(l.refreshed.Round(0)))
}

// check fails once the lock may have been taken for stale.
func (l *Lock) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gap := l.gap(time.Now()); gap > lockLostAfter {
		l.lost = true
	}
	if l.lost {
		return fmt.Errorf("%w (another process may have removed data meanwhile); nothing more is written: run the command again", ErrLockLost)
	}
	return nil
}

// checkLocks fails when a lock this Repository holds was lost.
func (r *Repository) checkLocks() error {
	r.locksMu.Lock()
	defer r.locksMu.Unlock()
	for l := range r.locks {
		if err := l.check(); err != nil {
			return err
		}
	}
	return nil
}

// ListLocks loads all lock files; vanished or unreadable ones are skipped.
func (r *Repository) ListLocks(ctx context.Context) (map[ID]*LockJSON, error) {
	return r.listLocks(ctx, false)
}

// lockLoads is how many lock files are read at once.
const lockLoads = 8

// listLocks lists and reads the lock files, each only once per Repository
// (see lockFiles); with early set, a listing prefetched by Open may stand
// in for a new one.
func (r *Repository) listLocks(ctx context.Context, early bool) (map[ID]*LockJSON, error) {
	var files []FileInfo
	if early {
		files = r.pre.take(ctx, LockFile)
	}
	if files == nil {
		if err := r.be.List(ctx, LockFile, func(fi FileInfo) error { files = append(files, fi); return nil }); err != nil {
			return nil, fmt.Errorf("list locks: %w", err)
		}
	}
	var ids []ID
	for _, fi := range files {
		if id, err := ParseID(fi.Name); err == nil {
			ids = append(ids, id)
		}
	}
	out := map[ID]*LockJSON{}
	var todo []ID
	r.locksMu.Lock()
	for _, id := range ids {
		if l, ok := r.lockFiles[id]; ok {
			out[id] = l
		} else {
			todo = append(todo, id)
		}
	}
	r.locksMu.Unlock()
	loaded := make([]*LockJSON, len(todo))
	errs := make([]error, len(todo))
	var g errgroup.Group
	g.SetLimit(lockLoads)
	for i, id := range todo {
		g.Go(func() error {
			var l LockJSON
			if errs[i] = r.LoadJSONUnpacked(ctx, LockFile, id, &l); errs[i] == nil {
				loaded[i] = &l
			}
			return nil
		})
	}
	_ = g.Wait() // never fails: the errors are in errs
	for i, id := range todo {
		if err := errs[i]; err != nil {
			if IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("load lock %v: %w", id.Str(), err)
		}
		out[id] = loaded[i]
		r.rememberLock(id, loaded[i])
	}
	return out, nil
}

// rememberLock keeps a lock file's content; lockFiles is bounded so that
// a long-running process does not collect every lock it ever saw.
func (r *Repository) rememberLock(id ID, l *LockJSON) {
	r.locksMu.Lock()
	defer r.locksMu.Unlock()
	if r.lockFiles == nil || len(r.lockFiles) >= 1024 {
		r.lockFiles = map[ID]*LockJSON{}
	}
	r.lockFiles[id] = l
}

func (r *Repository) conflict(ctx context.Context, exclusive bool, self ID, early bool) error {
	locks, err := r.listLocks(ctx, early)
	if err != nil {
		return err
	}
	now := Now()
	for id, l := range locks {
		if id == self || l.Stale(now) {
			continue
		}
		if exclusive || l.Exclusive {
			return fmt.Errorf("%w: %v (lock %v); wait for it to finish, or run `cairn unlock` if it is stale", ErrLocked, l, id.Str())
		}
	}
	return nil
}

// Lock takes a shared (backup, restore, check) or exclusive (prune) lock.
// Read-only repositories are not locked: nothing there can change.
func (r *Repository) Lock(ctx context.Context, exclusive bool) (*Lock, error) {
	l := &Lock{r: r, exclusive: exclusive}
	if r.opts.ReadOnly {
		return l, nil
	}
	// The first look may use Open's prefetched listing: it only spares a
	// lock file that would be removed at once; the second one decides.
	if err := r.conflict(ctx, exclusive, ID{}, true); err != nil {
		return nil, err
	}
	id, err := r.saveLock(ctx, exclusive)
	if err != nil {
		return nil, fmt.Errorf("create lock: %w", err)
	}
	// Someone may have locked at the same moment: look again.
	if err := r.conflict(ctx, exclusive, id, false); err != nil {
		_ = r.be.Remove(ctx, Handle{Type: LockFile, Name: id.String()})
		return nil, err
	}
	l.id = id
	l.refreshed = time.Now()
	r.locksMu.Lock()
	if r.locks == nil {
		r.locks = map[*Lock]bool{}
	}
	r.locks[l] = true
	r.locksMu.Unlock()
	if exclusive {
		// No locked writer can run now: temp files nobody can trace to a
		// live process may go.
		if tr, ok := unwrapBackend(r.be).(interface{ RemoveStaleTemp() (int, error) }); ok {
			_, _ = tr.RemoveStaleTemp()
		}
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.refresh(context.WithoutCancel(ctx))
	return l, nil
}

func (r *Repository) saveLock(ctx context.Context, exclusive bool) (ID, error) {
	username, hostname := CurrentUser()
	l := &LockJSON{
		Time: Now(), Exclusive: exclusive, Hostname: hostname, Username: username,
		PID: os.Getpid(), UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
	}
	id, err := r.SaveJSONUnpacked(ctx, LockFile, l)
	if err == nil {
		// Its content is known: the check after it need not read it back.
		// (Time is kept as written, at the JSON's precision.)
		l.Time = l.Time.Round(0)
		r.rememberLock(id, l)
	}
	return id, err
}

func (l *Lock) refresh(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(lockRefresh)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if l.check() != nil {
				// Woken after a long pause: refreshing now would hide
				// that others may have judged the lock stale.
				continue
			}
			start := time.Now()
			id, err := l.r.saveLock(ctx, l.exclusive)
			if err != nil {
				continue // try again next tick; the old lock stays valid meanwhile
			}
			l.mu.Lock()
			old := l.id
			l.id = id
			if !l.lost {
				l.refreshed = start
			}
			l.mu.Unlock()
			_ = l.r.be.Remove(ctx, Handle{Type: LockFile, Name: old.String()})
		}
	}
}

// Unlock stops refreshing and removes the lock file.
func (l *Lock) Unlock(ctx context.Context) error {
	if l == nil {
		return nil
	}
	if l.ready != nil {
		<-l.ready // a lock taken ahead: its file is written (or failed)
		if l.err != nil {
			l.r.locksMu.Lock()
			delete(l.r.locks, l)
			l.r.locksMu.Unlock()
			return nil // its file is removed already
		}
	}
	if l.stop == nil {
		return nil
	}
	close(l.stop)
	<-l.done
	l.stop = nil
	l.r.locksMu.Lock()
	delete(l.r.locks, l)
	l.r.locksMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.r.be.Remove(context.WithoutCancel(ctx), Handle{Type: LockFile, Name: l.id.String()})
	if err != nil && !IsNotExist(err) {
		return fmt.Errorf("remove lock: %w", err)
	}
	return nil
}

// RemoveLocks deletes stale locks, or all locks when all is set, and
// returns how many it removed.
func (r *Repository) RemoveLocks(ctx context.Context, all bool) (int, error) {
	if r.opts.ReadOnly {
		return 0, fmt.Errorf("unlock: %w", ErrReadOnly)
	}
	locks, err := r.ListLocks(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	now := Now()
	for id, l := range locks {
		if all || l.Stale(now) {
			if err := r.be.Remove(ctx, Handle{Type: LockFile, Name: id.String()}); err != nil && !IsNotExist(err) {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// unwrapBackend finds the storage backend below cairn's wrappers.
func unwrapBackend(be Backend) Backend {
	for {
		switch w := be.(type) {
		case RetryBackend:
			be = w.Backend
		case LimitBackend:
			be = w.Backend
		case ReadOnlyBackend:
			be = w.Backend
		default:
			return be
		}
	}
}
