package browse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// slowBackend is a remote repository's backend: every read of a pack waits
// delay (a round trip) and is counted, with the most reads ever in flight.
type slowBackend struct {
	repo.Backend
	delay    time.Duration
	loads    atomic.Int32
	inFlight atomic.Int32
	maxIn    atomic.Int32
}

func (b *slowBackend) Load(ctx context.Context, h repo.Handle, length int, offset int64) (io.ReadCloser, error) {
	if h.Type != repo.PackFile {
		return b.Backend.Load(ctx, h, length, offset)
	}
	b.loads.Add(1)
	n := b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	for m := b.maxIn.Load(); n > m && !b.maxIn.CompareAndSwap(m, n); m = b.maxIn.Load() {
	}
	time.Sleep(b.delay)
	return b.Backend.Load(ctx, h, length, offset)
}

// runFile backs up a file of size random bytes and reopens the repository
// through a slowBackend; it returns the file's node and bytes.
func runFile(t *testing.T, size int, delay time.Duration) (*repo.Repository, *slowBackend, *snapshot.Node, []byte) {
	t.Helper()
	w := brNewRepo(t)
	src := t.TempDir()
	data := brRandom(t, filepath.Join(src, "big"), size, 3)
	sn := brBackup(t, w, src, time.Time{})
	sb := &slowBackend{Backend: w.Backend(), delay: delay}
	r, err := repo.Open(context.Background(), sb, "browse-test", repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	node := brNode(t, snapshot.NewTreeLoader(r, 16), sn, filepath.Join(src, "big"))
	// Chunk boundaries depend on the repository's random polynomial: 20
	// MiB made 7 blobs in one CI run, so ask only for several.
	if len(node.Content) < 4 {
		t.Fatalf("want a file of several blobs, got %d", len(node.Content))
	}
	sb.loads.Store(0)
	sb.maxIn.Store(0)
	return r, sb, node, data
}

// TestFileReaderLoadsRuns: a sequential read loads the blobs of a file as
// runs of one pack, several at once: fewer backend reads than blobs, and
// more than one in flight.
func TestFileReaderLoadsRuns(t *testing.T) {
	r, sb, node, data := runFile(t, 40<<20, 20*time.Millisecond)
	fr, err := NewFileReader(context.Background(), r, NewBlobCache(r, 0), node)
	if err != nil {
		t.Fatal(err)
	}
	fr.ReadAhead = 16
	got := make([]byte, 0, len(data))
	buf := make([]byte, 128<<10)
	for off := int64(0); ; off += int64(len(buf)) {
		n, err := fr.ReadAt(buf, off)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("sequential read: wrong bytes")
	}
	blobs, loads := len(node.Content), int(sb.loads.Load())
	t.Logf("%d blobs, %d backend reads, at most %d at once", blobs, loads, sb.maxIn.Load())
	// How many blobs one run gets depends on how far read-ahead is when
	// the reader asks (timing): 8 to 13 reads for 25 blobs here. One read
	// per blob would be no runs at all.
	if loads*4 > blobs*3 {
		t.Errorf("%d blobs took %d backend reads, want at most 3/4 as many (runs of one pack)", blobs, loads)
	}
	if sb.maxIn.Load() < 2 {
		t.Errorf("at most %d backend read in flight, want read-ahead to overlap reads", sb.maxIn.Load())
	}
}

// TestFileReaderRunsExactBytes: random reads, reads across blob boundaries
// and concurrent readers through run loads all get the exact bytes.
func TestFileReaderRunsExactBytes(t *testing.T) {
	r, _, node, data := runFile(t, 20<<20+4321, time.Millisecond)
	cache := NewBlobCache(r, 6<<20) // smaller than the file: evictions too
	ctx := context.Background()
	fr, err := NewFileReader(ctx, r, cache, node)
	if err != nil {
		t.Fatal(err)
	}
	fr.ReadAhead = 8
	check := func(off int64, n int) error {
		b := make([]byte, n)
		m, err := fr.ReadAt(b, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if want := data[off:min(off+int64(n), int64(len(data)))]; !bytes.Equal(b[:m], want) {
			return errors.New("wrong bytes")
		}
		return nil
	}
	// Across every blob boundary.
	for i := 1; i < len(node.Content); i++ {
		if err := check(fr.starts[i]-7, 300); err != nil {
			t.Fatalf("read across boundary %d: %v", i, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for range 40 {
				off := rng.Int64N(int64(len(data)))
				if err := check(off, 1+rng.IntN(3<<20)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent random reads: %v", err)
	}
	waitLoads(t, cache)
	checkCacheInvariants(t, cache)
}
