package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// rttBackend makes every request take delay, as a remote store's round
// trip does, and records when each ran, so that a test can count the
// requests a caller made one after another.
type rttBackend struct {
	Backend
	delay time.Duration
	mu    sync.Mutex
	ops   []rttOp
}

type rttOp struct {
	what       string
	start, end time.Time
}

func (b *rttBackend) op(what string) func() {
	start := time.Now()
	time.Sleep(b.delay)
	return func() {
		b.mu.Lock()
		b.ops = append(b.ops, rttOp{what, start, time.Now()})
		b.mu.Unlock()
	}
}

func (b *rttBackend) Save(ctx context.Context, h Handle, rd io.Reader, size int64) error {
	defer b.op("save " + h.String())()
	return b.Backend.Save(ctx, h, rd, size)
}

func (b *rttBackend) Load(ctx context.Context, h Handle, length int, offset int64) (io.ReadCloser, error) {
	defer b.op("load " + h.String())()
	return b.Backend.Load(ctx, h, length, offset)
}

func (b *rttBackend) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	defer b.op("stat " + h.String())()
	return b.Backend.Stat(ctx, h)
}

func (b *rttBackend) List(ctx context.Context, t FileType, fn func(FileInfo) error) error {
	done := b.op("list " + t.String())
	var files []FileInfo
	err := b.Backend.List(ctx, t, func(fi FileInfo) error { files = append(files, fi); return nil })
	done() // the answer is in; fn works on it locally
	if err != nil {
		return err
	}
	for _, fi := range files {
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

func (b *rttBackend) Remove(ctx context.Context, h Handle) error {
	defer b.op("remove " + h.String())()
	return b.Backend.Remove(ctx, h)
}

// sequential is the longest chain of requests each sent after the one
// before it was answered: the round trips a caller waited for in turn.
// It also returns that chain, for the failure message.
func (b *rttBackend) sequential() (int, string) {
	b.mu.Lock()
	ops := slices.Clone(b.ops)
	b.mu.Unlock()
	slices.SortFunc(ops, func(x, y rttOp) int { return x.start.Compare(y.start) })
	depth := make([]int, len(ops))
	prev := make([]int, len(ops))
	best := -1
	for i, o := range ops {
		depth[i], prev[i] = 1, -1
		for j := range i {
			if !ops[j].end.After(o.start) && depth[j]+1 > depth[i] {
				depth[i], prev[i] = depth[j]+1, j
			}
		}
		if best < 0 || depth[i] > depth[best] {
			best = i
		}
	}
	if best < 0 {
		return 0, ""
	}
	var chain []string
	for i := best; i >= 0; i = prev[i] {
		chain = append(chain, ops[i].what)
	}
	slices.Reverse(chain)
	return depth[best], strings.Join(chain, " -> ")
}

func (b *rttBackend) reset() {
	b.mu.Lock()
	b.ops = nil
	b.mu.Unlock()
}

// What a backup does with the repository before and after its files: open,
// lock, index, snapshot listing, then a snapshot saved and the lock
// removed. Over a network each request one after another is a round
// trip; Open sends the config, key and listing requests at once and
// prefetches the listings the lock, the parent choice and the index need.
func TestBackupRoundTrips(t *testing.T) {
	ctx := context.Background()
	be := rttRepo(t)

	run := func(prefetch bool) (int, string) {
		be.reset()
		r, err := Open(ctx, be, "secret", Options{Prefetch: prefetch})
		if err != nil {
			t.Fatal(err)
		}
		l, err := r.Lock(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(r.Index().Packs()); n != 3 {
			t.Fatalf("index has %d packs, want 3", n)
		}
		n := 0
		if err := r.List(ctx, SnapshotFile, func(ID, int64) error { n++; return nil }); err != nil || n < 3 {
			t.Fatalf("listed %d snapshots (%v), want at least 3", n, err)
		}
		if _, err := r.SaveJSONUnpacked(ctx, SnapshotFile, map[string]any{"tree": "new"}); err != nil {
			t.Fatal(err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		return be.sequential()
	}
	// Without prefetching, the listings still come one by one (12 before
	// config and key files were read at once and the lock's own file was
	// no longer read back).
	n, chain := run(false)
	t.Logf("without prefetch: %d: %s", n, chain)
	if n > 10 {
		t.Errorf("without prefetch: %d requests one after another, want at most 10:\n%s", n, chain)
	}
	// config+keys+listings, key file, lock, lock check, index check,
	// snapshot, unlock.
	n, chain = run(true)
	t.Logf("with prefetch: %d: %s", n, chain)
	if n > 7 {
		t.Errorf("with prefetch: %d requests one after another, want at most 7:\n%s", n, chain)
	}
}

// A command that only reads (restore, ls, dump) takes its lock ahead too:
// the lock file and its check go out while the snapshot and index are
// read, so the first data request waits on fewer round trips.
func TestReadRoundTrips(t *testing.T) {
	ctx := context.Background()
	be := rttRepo(t)
	run := func(ahead bool) (int, string) {
		be.reset()
		r, err := Open(ctx, be, "secret", Options{Prefetch: ahead})
		if err != nil {
			t.Fatal(err)
		}
		take := r.Lock
		if ahead {
			take = r.LockAhead
		}
		l, err := take(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		var sn ID
		if err := r.List(ctx, SnapshotFile, func(id ID, _ int64) error { sn = id; return nil }); err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := r.LoadJSONUnpacked(ctx, SnapshotFile, sn, &v); err != nil {
			t.Fatal(err)
		}
		if err := r.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.AwaitLocks(ctx); err != nil {
			t.Fatal(err)
		}
		pb := r.Index().Packs()
		if len(pb) != 3 {
			t.Fatalf("index has %d packs, want 3", len(pb))
		}
		var pack ID
		for id := range pb {
			pack = id
		}
		rd, err := r.Backend().Load(ctx, Handle{Type: PackFile, Name: pack.String()}, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		rd.Close()
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		return be.sequential()
	}
	slow, chain := run(false)
	t.Logf("lock first: %d: %s", slow, chain)
	fast, chain := run(true)
	t.Logf("lock ahead: %d: %s", fast, chain)
	// config+keys+listings, key file, lock check, lock, snapshot, index
	// and lock check at once, data, unlock.
	if fast > 7 || fast >= slow {
		t.Errorf("lock ahead: %d requests one after another (lock first: %d), want at most 7 and fewer:\n%s", fast, slow, chain)
	}
}

// rttRepo makes a repository of three snapshots, each with a pack and an
// index file, and returns it behind a backend that delays and records
// every request.
func rttRepo(t *testing.T) *rttBackend {
	t.Helper()
	r, dir := newTestRepo(t, 2)
	saveSnapshotsWithPacks(t, r, 3)
	local, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &rttBackend{Backend: local, delay: 40 * time.Millisecond}
}

// saveSnapshotsWithPacks saves n snapshot files, each followed by a data
// blob flushed into a pack and index file of its own.
func saveSnapshotsWithPacks(t *testing.T, r *Repository, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		if _, err := r.SaveJSONUnpacked(ctx, SnapshotFile, map[string]any{"tree": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := r.SaveBlob(ctx, DataBlob, randomBytes(1000), ID{}); err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// The index listing prefetched by Open predates the lock; LoadIndex lists
// again and keeps what it loaded only if no index file went meanwhile.
func TestLoadIndexPrefetchedReconciles(t *testing.T) {
	ctx := context.Background()
	r, dir := newTestRepo(t, 2)
	save := func(data []byte) (ID, ID) {
		t.Helper()
		id, _, _, err := r.SaveBlob(ctx, DataBlob, data, ID{})
		if err != nil {
			t.Fatal(err)
		}
		var before []ID
		_ = r.List(ctx, IndexFile, func(id ID, _ int64) error { before = append(before, id); return nil })
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		var file ID
		_ = r.List(ctx, IndexFile, func(id ID, _ int64) error {
			if !slices.Contains(before, id) {
				file = id
			}
			return nil
		})
		return id, file
	}
	a, aFile := save(randomBytes(500))
	b, _ := save(randomBytes(500))
	be, _ := OpenLocal(dir)

	// Only added meanwhile: both the prefetched and the new file count.
	r2, err := Open(ctx, be, "secret", Options{Prefetch: true})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := save(randomBytes(500))
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []ID{a, b, c} {
		if !r2.HasBlob(DataBlob, id) {
			t.Errorf("blob %v missing from the index", id.Str())
		}
	}

	// An index file removed meanwhile (a prune replaced it): its blobs
	// must not be trusted, although the prefetched listing named it.
	r3, err := Open(ctx, be, "secret", Options{Prefetch: true})
	if err != nil {
		t.Fatal(err)
	}
	<-r3.pre.lists[IndexFile].done // listed before the removal
	if err := be.Remove(ctx, Handle{Type: IndexFile, Name: aFile.String()}); err != nil {
		t.Fatal(err)
	}
	if err := r3.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if r3.HasBlob(DataBlob, a) {
		t.Error("a blob of a removed index file is in the index")
	}
	if !r3.HasBlob(DataBlob, b) || !r3.HasBlob(DataBlob, c) {
		t.Error("blobs of the remaining index files are missing")
	}
}

// A lock's own file is not read back, and lock files seen once are not
// read again: each costs a round trip.
func TestLockReadsEachLockFileOnce(t *testing.T) {
	ctx := context.Background()
	r, dir := newTestRepo(t, 2)
	other := &LockJSON{Time: time.Now(), Hostname: "elsewhere", PID: 1}
	if _, err := r.SaveJSONUnpacked(ctx, LockFile, other); err != nil {
		t.Fatal(err)
	}
	local, _ := OpenLocal(dir)
	be := &countingBackend{Backend: local}
	r2, err := Open(ctx, be, "secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := r2.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	if n := be.loads(LockFile); n != 1 {
		t.Errorf("Lock read %d lock files, want 1 (the other's, once)", n)
	}
}

type countingBackend struct {
	Backend
	mu    sync.Mutex
	count map[FileType]int
}

func (b *countingBackend) Load(ctx context.Context, h Handle, length int, offset int64) (io.ReadCloser, error) {
	b.mu.Lock()
	if b.count == nil {
		b.count = map[FileType]int{}
	}
	b.count[h.Type]++
	b.mu.Unlock()
	return b.Backend.Load(ctx, h, length, offset)
}

func (b *countingBackend) loads(t FileType) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count[t]
}

// gateBackend holds the first lock file's Save until open is closed, and
// records the order in which files were saved.
type gateBackend struct {
	Backend
	open  chan struct{}
	mu    sync.Mutex
	saved []Handle
}

func (b *gateBackend) Save(ctx context.Context, h Handle, rd io.Reader, size int64) error {
	if h.Type == LockFile {
		<-b.open
	}
	err := b.Backend.Save(ctx, h, rd, size)
	b.mu.Lock()
	b.saved = append(b.saved, h)
	b.mu.Unlock()
	return err
}

func (b *gateBackend) order() []Handle {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.saved)
}

// lockAheadRepo is a repository with one snapshot and one pack, opened
// again over a gateBackend with a lock taken ahead.
func lockAheadRepo(t *testing.T) (*Repository, *gateBackend, *Lock, Backend) {
	t.Helper()
	ctx := context.Background()
	r, dir := newTestRepo(t, 2)
	saveSnapshotsWithPacks(t, r, 1)
	local, _ := OpenLocal(dir)
	be := &gateBackend{Backend: local, open: make(chan struct{})}
	r2, err := Open(ctx, be, "secret", Options{Prefetch: true})
	if err != nil {
		t.Fatal(err)
	}
	l, err := r2.LockAhead(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	return r2, be, l, local
}

// A lock taken ahead lets the command read at once; its writes wait for
// the lock file, packs included.
func TestLockAheadReadsFirstWritesWait(t *testing.T) {
	ctx := context.Background()
	r, be, l, _ := lockAheadRepo(t)
	// The lock file is not written yet, and reading goes on.
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := r.List(ctx, SnapshotFile, func(ID, int64) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("listed %d snapshots (%v)", n, err)
	}
	done := make(chan error, 1)
	go func() {
		if _, _, _, err := r.SaveBlob(ctx, DataBlob, randomBytes(2000), ID{}); err != nil {
			done <- err
			return
		}
		if err := r.Flush(ctx); err != nil {
			done <- err
			return
		}
		_, err := r.SaveJSONUnpacked(ctx, SnapshotFile, map[string]any{"tree": "y"})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the writes did not wait for the lock (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	if got := be.order(); len(got) != 0 {
		t.Fatalf("saved before the lock: %v", got)
	}
	close(be.open)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := be.order()
	if len(got) != 4 || got[0].Type != LockFile || got[1].Type != PackFile || got[2].Type != IndexFile || got[3].Type != SnapshotFile {
		t.Fatalf("saved in order %v, want lock, pack, index, snapshot", got)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if locks, _ := r.ListLocks(ctx); len(locks) != 0 {
		t.Fatalf("%d locks left", len(locks))
	}
}

// An exclusive lock that appears while the lock is taken ahead: nothing
// is written, the writes say why, and the lock file goes.
func TestLockAheadConflict(t *testing.T) {
	ctx := context.Background()
	r, be, l, local := lockAheadRepo(t)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	other := &LockJSON{Time: time.Now(), Exclusive: true, Hostname: "elsewhere", PID: 7}
	buf := r.key.Seal(nil, encodeUnpacked(2, LockFile, mustJSON(t, other)))
	if err := local.Save(ctx, Handle{Type: LockFile, Name: Hash(buf).String()}, bytes.NewReader(buf), int64(len(buf))); err != nil {
		t.Fatal(err)
	}
	close(be.open)
	_, err := r.SaveJSONUnpacked(ctx, SnapshotFile, map[string]any{"tree": "y"})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "elsewhere") {
		t.Fatalf("save under a conflicting lock: %v", err)
	}
	if _, _, _, err := r.SaveBlob(ctx, DataBlob, randomBytes(2000), ID{}); err == nil {
		if err := r.Flush(ctx); !errors.Is(err, ErrLocked) {
			t.Fatalf("flush under a conflicting lock: %v", err)
		}
	}
	for _, h := range be.order() {
		if h.Type != LockFile {
			t.Fatalf("saved %v under a conflicting lock", h)
		}
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if locks, _ := r.ListLocks(ctx); len(locks) != 1 {
		t.Fatalf("%d locks left, want only the other one", len(locks))
	}
}

// An index file removed (a prune ran) between the index read ahead and
// the lock's check: what was read is not trusted, nothing is written.
func TestLockAheadIndexReplaced(t *testing.T) {
	ctx := context.Background()
	r, be, l, local := lockAheadRepo(t)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	var files []ID
	_ = r.List(ctx, IndexFile, func(id ID, _ int64) error { files = append(files, id); return nil })
	if len(files) != 1 {
		t.Fatalf("%d index files", len(files))
	}
	if err := local.Remove(ctx, Handle{Type: IndexFile, Name: files[0].String()}); err != nil {
		t.Fatal(err)
	}
	close(be.open)
	_, err := r.SaveJSONUnpacked(ctx, SnapshotFile, map[string]any{"tree": "y"})
	if !errors.Is(err, ErrIndexChanged) {
		t.Fatalf("save after the index was replaced: %v", err)
	}
	for _, h := range be.order() {
		if h.Type != LockFile {
			t.Fatalf("saved %v after the index was replaced", h)
		}
	}
	// A reader loads the index again, from a listing taken under the
	// confirmed lock, and may go on.
	if err := r.AwaitLocks(ctx); !errors.Is(err, ErrIndexChanged) {
		t.Fatalf("await after the index was replaced: %v", err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.AwaitLocks(ctx); err != nil {
		t.Fatalf("await after loading the index again: %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	buf, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}
