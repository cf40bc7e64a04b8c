package browse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// checkCacheInvariants verifies the cache's bookkeeping once no reader
// holds anything: no references, sizes that add up, a budget kept.
func checkCacheInvariants(t *testing.T, c *BlobCache) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var size int64
	for e := c.lru.Front(); e != nil; e = e.Next() {
		b := e.Value.(*cachedBlob)
		if b.refs != 0 {
			t.Errorf("blob %v still has %d references", b.id.Str(), b.refs)
		}
		if !b.cached || b.buf == nil || c.items[b.id] != e {
			t.Errorf("blob %v: inconsistent cache entry", b.id.Str())
		}
		size += int64(cap(b.buf))
	}
	if size != c.size || len(c.items) != c.lru.Len() {
		t.Errorf("cache counts %d bytes in %d items, the list holds %d bytes in %d", c.size, len(c.items), size, c.lru.Len())
	}
	if c.size > c.max {
		t.Errorf("cache holds %d bytes, budget %d", c.size, c.max)
	}
	var free int64
	for _, b := range c.free {
		free += int64(cap(b))
	}
	if free != c.freeBytes || free > c.freeMax {
		t.Errorf("free list: %d bytes, counted %d, max %d", free, c.freeBytes, c.freeMax)
	}
	if len(c.loads) != 0 {
		t.Errorf("%d loads still under way", len(c.loads))
	}
}

// waitLoads waits for background loads (read-ahead) to end.
func waitLoads(t *testing.T, c *BlobCache) {
	t.Helper()
	for i := 0; i < 500; i++ {
		c.mu.Lock()
		n := len(c.loads)
		c.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("background loads did not end")
}

func spanBytes(s *Span) []byte {
	out := make([]byte, s.Len())
	s.CopyTo(out)
	return out
}

func TestFileReaderSpans(t *testing.T) {
	r := brNewRepo(t)
	src := t.TempDir()
	data := brRandom(t, filepath.Join(src, "big"), 24<<20+777, 7)
	sn := brBackup(t, r, src, time.Time{})
	node := brNode(t, snapshot.NewTreeLoader(r, 16), sn, filepath.Join(src, "big"))
	if len(node.Content) < 6 {
		t.Fatalf("want a file of many blobs, got %d", len(node.Content))
	}
	ctx := context.Background()
	// A budget of a few blobs: reads evict and buffers are reused all the time.
	cache := NewBlobCache(r, 6<<20)
	fr, err := NewFileReader(ctx, r, cache, node)
	if err != nil {
		t.Fatal(err)
	}
	fr.ReadAhead = 3

	// Spans across every blob boundary have one slice per blob.
	for i := 1; i < len(node.Content); i++ {
		off := fr.starts[i] - 100
		s, err := fr.Span(ctx, off, 200)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Slices()) != 2 || s.Len() != 200 || !bytes.Equal(spanBytes(s), data[off:off+200]) {
			t.Fatalf("span over boundary %d: %d slices, %d bytes, right bytes: %v", i, len(s.Slices()), s.Len(), bytes.Equal(spanBytes(s), data[off:off+200]))
		}
		s.Release()
		s.Release() // twice is harmless
	}
	// The end of the content, and past it.
	s, err := fr.Span(ctx, int64(len(data))-10, 1<<20)
	if err != nil || !bytes.Equal(spanBytes(s), data[len(data)-10:]) {
		t.Fatalf("span at the end: %v", err)
	}
	s.Release()
	if s, err := fr.Span(ctx, int64(len(data)), 100); err != nil || s.Len() != 0 {
		t.Fatalf("span past the end: %v", err)
	}
	if _, err := fr.Span(ctx, -1, 100); err == nil {
		t.Fatal("span at a negative offset")
	}

	// A span held while everything else is read (and its blobs evicted,
	// their buffers reused) keeps its bytes.
	held, err := fr.Span(ctx, fr.starts[1]-5000, 3<<20)
	if err != nil {
		t.Fatal(err)
	}
	heldWant := data[fr.starts[1]-5000 : fr.starts[1]-5000+3<<20]
	// Get hands out data the caller may keep: it is never reused.
	pinned, err := cache.Get(ctx, node.Content[2])
	if err != nil {
		t.Fatal(err)
	}
	pinnedWant := bytes.Clone(pinned)
	for pass := 0; pass < 2; pass++ {
		var out bytes.Buffer
		if _, err := fr.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("WriteTo pass %d: %v", pass, err)
		}
		for off := int64(0); off < int64(len(data)); off += 1 << 20 {
			s, err := fr.Span(ctx, off, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(spanBytes(s), data[off:min(off+1<<20, int64(len(data)))]) {
				t.Fatalf("pass %d: span at %d: wrong bytes", pass, off)
			}
			s.Release()
		}
	}
	if !bytes.Equal(spanBytes(held), heldWant) {
		t.Fatal("a held span changed while other reads reused buffers")
	}
	if !bytes.Equal(pinned, pinnedWant) {
		t.Fatal("data returned by Get changed")
	}
	held.Release()
	waitLoads(t, cache)
	checkCacheInvariants(t, cache)

	// Concurrent readers at different offsets, with read-ahead under way
	// and a small cache: Span and ReadAt get the right bytes.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			for range 40 {
				off := rng.Int64N(int64(len(data)))
				n := 1 + rng.IntN(3<<20)
				want := data[off:min(off+int64(n), int64(len(data)))]
				if g%2 == 0 {
					s, err := fr.Span(ctx, off, n)
					if err != nil {
						errs <- err
						return
					}
					got := spanBytes(s)
					s.Release()
					if !bytes.Equal(got, want) {
						errs <- fmt.Errorf("span(%d, %d): wrong bytes", off, n)
						return
					}
				} else {
					buf := make([]byte, n)
					k, err := fr.ReadAt(buf, off)
					if err != nil && !errors.Is(err, io.EOF) {
						errs <- err
						return
					}
					if !bytes.Equal(buf[:k], want) {
						errs <- fmt.Errorf("ReadAt(%d, %d): wrong bytes", off, n)
						return
					}
				}
			}
		})
	}
	// A sequential reader at the same time, in kernel-sized pieces.
	wg.Go(func() {
		fr2, err := NewFileReader(ctx, r, cache, node)
		if err != nil {
			errs <- err
			return
		}
		fr2.ReadAhead = 4
		var got []byte
		for off := int64(0); off < int64(len(data)); {
			s, err := fr2.Span(ctx, off, 1<<20)
			if err != nil {
				errs <- err
				return
			}
			got = append(got, spanBytes(s)...)
			off += int64(s.Len())
			s.Release()
		}
		if !bytes.Equal(got, data) {
			errs <- errors.New("sequential reader: wrong bytes")
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitLoads(t, cache)
	checkCacheInvariants(t, cache)
}

// TestFileReaderSequentialReuse reads a file front to back as the kernel
// does: blobs read to the end give their buffers to the next loads, and
// nothing is loaded twice.
func TestFileReaderSequentialReuse(t *testing.T) {
	r := brNewRepo(t)
	src := t.TempDir()
	data := brRandom(t, filepath.Join(src, "big"), 20<<20, 11)
	sn := brBackup(t, r, src, time.Time{})
	node := brNode(t, snapshot.NewTreeLoader(r, 16), sn, filepath.Join(src, "big"))
	ctx := context.Background()
	cache := NewBlobCache(r, 0)
	fr, err := NewFileReader(ctx, r, cache, node)
	if err != nil {
		t.Fatal(err)
	}
	fr.ReadAhead = 4
	// Held through the whole read, while the blobs under them are read to
	// the end (consumed) and later loads look for buffers to take over.
	held, err := fr.Span(ctx, fr.starts[1]+10, 1000)
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := cache.Get(ctx, node.Content[2])
	if err != nil {
		t.Fatal(err)
	}
	pinnedWant := bytes.Clone(pinned)
	var got []byte
	for off := int64(0); off < int64(len(data)); off += 1 << 20 {
		s, err := fr.Span(ctx, off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, spanBytes(s)...)
		s.Release()
	}
	if !bytes.Equal(got, data) {
		t.Fatal("wrong bytes")
	}
	if !bytes.Equal(spanBytes(held), data[fr.starts[1]+10:fr.starts[1]+1010]) {
		t.Fatal("a held span changed")
	}
	held.Release()
	if !bytes.Equal(pinned, pinnedWant) {
		t.Fatal("data returned by Get changed")
	}
	waitLoads(t, cache)
	checkCacheInvariants(t, cache)
	cache.mu.Lock()
	consumed, cached := 0, cache.lru.Len()
	for e := cache.lru.Front(); e != nil; e = e.Next() {
		if e.Value.(*cachedBlob).consumed {
			consumed++
		}
	}
	cache.mu.Unlock()
	// Every cached blob was read to the end: the next loads may take their
	// buffers (see TestBlobCacheReusesConsumed).
	if consumed != cached {
		t.Errorf("%d blobs of %d cached, %d of them consumed", cached, len(node.Content), consumed)
	}
	// Reading it again still works (from the cache or loading again).
	var out bytes.Buffer
	if _, err := fr.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("second pass: %v", err)
	}
}

// TestFileReaderCompressed covers blobs that are stored compressed: they
// are decrypted into one buffer and decompressed into another.
func TestFileReaderCompressed(t *testing.T) {
	r := brNewRepo(t)
	src := t.TempDir()
	var text bytes.Buffer
	rng := rand.New(rand.NewPCG(5, 5))
	for text.Len() < 6<<20 {
		fmt.Fprintf(&text, "line %d of a compressible file: %x\n", text.Len(), rng.Uint32()%64)
	}
	if err := os.WriteFile(filepath.Join(src, "text"), text.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sn := brBackup(t, r, src, time.Time{})
	node := brNode(t, snapshot.NewTreeLoader(r, 16), sn, filepath.Join(src, "text"))
	compressed := 0
	for _, id := range node.Content {
		if r.LookupBlob(repo.DataBlob, id)[0].IsCompressed() {
			compressed++
		}
	}
	if compressed == 0 {
		t.Fatal("no compressed blobs")
	}
	ctx := context.Background()
	cache := NewBlobCache(r, 2<<20)
	fr, err := NewFileReader(ctx, r, cache, node)
	if err != nil {
		t.Fatal(err)
	}
	for pass := 0; pass < 2; pass++ {
		var got []byte
		for off := int64(0); off < fr.Size(); off += 300_000 {
			s, err := fr.Span(ctx, off, 300_000)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, spanBytes(s)...)
			s.Release()
		}
		if !bytes.Equal(got, text.Bytes()) {
			t.Fatalf("pass %d: wrong bytes", pass)
		}
	}
	waitLoads(t, cache)
	checkCacheInvariants(t, cache)
}

// TestFileReaderCorruptPack: a damaged blob fails the read with
// ErrCorruptPack, and the cache stays consistent.
func TestFileReaderCorruptPack(t *testing.T) {
	dir := t.TempDir()
	be, err := repo.CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, "browse-test", 2,
		repo.Options{KDF: crypto.KDFParams{N: 1 << 10, R: 8, P: 1}, Compression: repo.CompressionAuto})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	data := brRandom(t, filepath.Join(src, "big"), 6<<20, 3)
	sn := brBackup(t, r, src, time.Time{})
	node := brNode(t, snapshot.NewTreeLoader(r, 16), sn, filepath.Join(src, "big"))
	if len(node.Content) < 2 {
		t.Fatalf("want several blobs, got %d", len(node.Content))
	}
	// Flip a byte in the middle of the second blob.
	pb := r.LookupBlob(repo.DataBlob, node.Content[1])[0]
	var packPath string
	filepath.WalkDir(filepath.Join(dir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == pb.Pack.String() {
			packPath = p
		}
		return nil
	})
	f, err := os.OpenFile(packPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	at := int64(pb.Offset) + int64(pb.Length)/2
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x55
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
	f.Close()

	ctx := context.Background()
	cache := NewBlobCache(r, 0)
	fr, err := NewFileReader(ctx, r, cache, node)
	if err != nil {
		t.Fatal(err)
	}
	// The first blob reads fine; a span reaching into the second fails.
	s, err := fr.Span(ctx, 0, 1000)
	if err != nil || !bytes.Equal(spanBytes(s), data[:1000]) {
		t.Fatalf("first blob: %v", err)
	}
	s.Release()
	if _, err := fr.Span(ctx, fr.starts[1]-10, 100); !errors.Is(err, repo.ErrCorruptPack) {
		t.Fatalf("span over the damaged blob: %v, want ErrCorruptPack", err)
	}
	if _, err := fr.ReadAt(make([]byte, 100), fr.starts[1]+10); !errors.Is(err, repo.ErrCorruptPack) {
		t.Fatalf("ReadAt in the damaged blob: %v, want ErrCorruptPack", err)
	}
	waitLoads(t, cache)
	checkCacheInvariants(t, cache)
}

// TestBlobCacheCancelledWaiters: callers that give up while a load is
// under way leave no references behind, and the others get the blob.
func TestBlobCacheCancelledWaiters(t *testing.T) {
	r := brNewRepo(t)
	src := t.TempDir()
	data := brRandom(t, filepath.Join(src, "f"), 3<<20, 4)
	sn := brBackup(t, r, src, time.Time{})
	node := brNode(t, snapshot.NewTreeLoader(r, 16), sn, filepath.Join(src, "f"))
	for round := range 20 {
		cache := NewBlobCache(r, 0)
		fr, err := NewFileReader(context.Background(), r, cache, node)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Go(func() {
				ctx, cancel := context.WithCancel(context.Background())
				if g%2 == 1 {
					// Give up at some point during the load.
					time.AfterFunc(time.Duration(g*round)*20*time.Microsecond, cancel)
				}
				defer cancel()
				s, err := fr.Span(ctx, 100, 4096)
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						t.Error(err)
					}
					return
				}
				if !bytes.Equal(spanBytes(s), data[100:4196]) {
					t.Error("wrong bytes")
				}
				s.Release()
			})
		}
		wg.Wait()
		waitLoads(t, cache)
		checkCacheInvariants(t, cache)
	}
}

// TestBlobCacheReusesConsumed: getBuf takes the buffer of a consumed,
// unreferenced blob at the back of the LRU list, and never one that is
// referenced, pinned or not consumed.
func TestBlobCacheReusesConsumed(t *testing.T) {
	c := NewBlobCache(nil, 64<<20)
	add := func(name string, size int) *cachedBlob {
		buf := make([]byte, size)
		b := &cachedBlob{id: repo.Hash([]byte(name)), buf: buf, data: buf}
		c.mu.Lock()
		c.addLocked(b)
		c.mu.Unlock()
		return b
	}
	same := func(a, b []byte) bool { return &a[:1][0] == &b[:1][0] }

	fresh := add("fresh", 1<<20)   // not consumed
	held := add("held", 1<<20)     // consumed, referenced
	pinned := add("pinned", 1<<20) // consumed, pinned
	huge := add("huge", 8<<20)     // consumed, too large for 1 MiB
	victim := add("victim", 1<<20) // consumed, free to take
	c.mu.Lock()
	held.refs = 1
	pinned.pinned = true
	for _, b := range []*cachedBlob{held, pinned, huge, victim} {
		c.consumedLocked(b)
	}
	c.mu.Unlock()
	victimBuf, heldBuf, pinnedBuf, freshBuf := victim.buf, held.buf, pinned.buf, fresh.buf

	got := c.getBuf(1<<20 - 100)
	if !same(got, victimBuf) || len(got) != 1<<20-100 {
		t.Fatal("getBuf did not take the consumed blob's buffer")
	}
	if _, ok := c.items[victim.id]; ok || victim.buf != nil {
		t.Fatal("the blob whose buffer was taken is still cached")
	}
	for i := 0; i < 3; i++ {
		got := c.getBuf(1 << 20)
		for _, b := range [][]byte{heldBuf, pinnedBuf, freshBuf} {
			if same(got, b) {
				t.Fatal("getBuf took a buffer that is in use")
			}
		}
	}
	// Released, the held blob's buffer may go too.
	c.release(held)
	if got := c.getBuf(1 << 20); !same(got, heldBuf) {
		t.Fatal("getBuf did not take the released consumed blob's buffer")
	}
	// Evicted buffers go to the free list, from which getBuf takes first.
	c.putBuf(make([]byte, 0, 2<<20))
	if len(c.free) != 1 || c.freeBytes != 2<<20 {
		t.Fatalf("free list: %d buffers, %d bytes", len(c.free), c.freeBytes)
	}
	if got := c.getBuf(1<<20 + 5); cap(got) != 2<<20 || len(c.free) != 0 || c.freeBytes != 0 {
		t.Fatal("getBuf did not take the free buffer")
	}
}
