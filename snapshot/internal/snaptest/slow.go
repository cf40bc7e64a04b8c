package snaptest

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/testutil"
)

// SlowBackend wraps a backend to stand in for a remote one: every Load of
// a pack file waits Delay first (a round trip), and the loads in flight are
// counted, so tests can see whether a walk overlaps them.
type SlowBackend struct {
	repo.Backend
	Delay time.Duration

	inFlight, maxInFlight, loads atomic.Int64
	// Fail, when set, decides whether a pack Load fails instead.
	Fail func(h repo.Handle, offset int64) error
}

// Load counts the load and, for packs, waits Delay (or until ctx ends).
func (b *SlowBackend) Load(ctx context.Context, h repo.Handle, length int, offset int64) (io.ReadCloser, error) {
	if h.Type != repo.PackFile {
		return b.Backend.Load(ctx, h, length, offset)
	}
	b.loads.Add(1)
	n := b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	for {
		m := b.maxInFlight.Load()
		if n <= m || b.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	if b.Delay > 0 {
		tm := time.NewTimer(b.Delay)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return nil, ctx.Err()
		}
	}
	if b.Fail != nil {
		if err := b.Fail(h, offset); err != nil {
			return nil, err
		}
	}
	return b.Backend.Load(ctx, h, length, offset)
}

// MaxInFlight is the most pack loads that were in flight at once since the
// last Reset.
func (b *SlowBackend) MaxInFlight() int { return int(b.maxInFlight.Load()) }

// Loads is the number of pack loads since the last Reset.
func (b *SlowBackend) Loads() int { return int(b.loads.Load()) }

// InFlight is the number of pack loads in flight now.
func (b *SlowBackend) InFlight() int { return int(b.inFlight.Load()) }

// Reset zeroes the counters.
func (b *SlowBackend) Reset() { b.maxInFlight.Store(0); b.loads.Store(0) }

// OpenSlow opens the repository in dir (with its index) through a
// SlowBackend with the given delay, with a fresh in-memory state: nothing
// of an earlier open is cached.
func OpenSlow(t testing.TB, dir string, delay time.Duration) (*repo.Repository, *SlowBackend) {
	t.Helper()
	ctx := context.Background()
	be, err := repo.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	slow := &SlowBackend{Backend: be, Delay: delay}
	r, err := repo.Open(ctx, slow, Password, repo.Options{KDF: KDF})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	return r, slow
}

// ManyDirs backs up a generated tree of about dirs directories (few, tiny
// files) into a new repository and returns its directory, the source tree
// and the snapshot. Open it with OpenSlow to walk it as if remote.
func ManyDirs(t testing.TB, dirs int) (repoDir, src string, sn *snapshot.Snapshot) {
	t.Helper()
	src = t.TempDir()
	testutil.GenTree(t, src, testutil.GenOptions{Seed: uint64(dirs), SmallFiles: 2 * dirs, MaxSmallSize: 200, EmptyDirs: 5, Depth: 6, Dirs: dirs})
	r, repoDir := NewRepo(t, 2, 1<<20)
	sn = Backup(t, r, src)
	return repoDir, src, sn
}
