package browse

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// DefaultBlobCacheSize is the byte budget dump and mount use for decrypted
// data blobs.
const DefaultBlobCacheSize = 64 << 20

// maxPrefetches bounds the background loads that read-ahead may start: a
// few more than there are cores (GOMAXPROCS when the cache is made), so
// that every core has a blob to decrypt and hash while the reader copies
// the previous one.
func maxPrefetches() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// bufRound is the granularity of blob buffer sizes, so that a recycled
// buffer fits blobs of slightly different sizes.
const bufRound = 64 << 10

// BlobCache keeps decrypted data blobs in memory up to a byte budget,
// evicting the least recently used first. Concurrent requests for the same
// blob share one load, and a load goes on when the caller that started it
// gives up, so that others (and read-ahead) still profit from it. Safe for
// concurrent use.
//
// The buffers of evicted blobs are reused for new loads once no reader
// holds them (see Span), so that streaming a large file neither faults in
// fresh memory for every blob nor keeps the garbage collector busy.
type BlobCache struct {
	r   *repo.Repository
	max int64

	mu    sync.Mutex
	size  int64      // bytes (buffer capacities) of the cached blobs
	lru   *list.List // of *cachedBlob, front = most recently used
	items map[repo.ID]*list.Element
	loads map[repo.ID]*blobLoad

	free      [][]byte // buffers to reuse, oldest first
	freeBytes int64
	freeMax   int64

	prefetch chan struct{} // tokens for background loads
}

// cachedBlob is a loaded blob. Its buffer goes back to the free list when
// it is neither cached nor referenced, unless it was handed out by Get.
type cachedBlob struct {
	id       repo.ID
	buf      []byte // the whole buffer, from getBuf
	data     []byte // the plaintext, within buf
	refs     int    // holders of data (readers, spans); guarded by BlobCache.mu
	cached   bool   // in the LRU list
	pinned   bool   // returned by Get: the caller may keep it, never reuse it
	consumed bool   // a reader has read all of it (see FileReader.consume)
}

type blobLoad struct {
	done chan struct{}
	// Guarded by BlobCache.mu:
	waiters  int  // callers that get a reference when the load ends
	finished bool // blob and err are set
	blob     *cachedBlob
	err      error
}

// NewBlobCache caches up to maxBytes of plaintext (DefaultBlobCacheSize if
// maxBytes <= 0).
func NewBlobCache(r *repo.Repository, maxBytes int64) *BlobCache {
	if maxBytes <= 0 {
		maxBytes = DefaultBlobCacheSize
	}
	c := &BlobCache{r: r, max: maxBytes, lru: list.New(),
		items: map[repo.ID]*list.Element{}, loads: map[repo.ID]*blobLoad{},
		freeMax:  min(max(maxBytes/4, 1<<20), 16<<20),
		prefetch: make(chan struct{}, maxPrefetches())}
	return c
}

// Get returns the plaintext of data blob id. Callers must not modify it.
func (c *BlobCache) Get(ctx context.Context, id repo.ID) ([]byte, error) {
	b, err := c.acquire(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	b.pinned = true // the caller may keep data as long as it likes
	c.releaseLocked(b)
	c.mu.Unlock()
	return b.data, nil
}

// acquire returns blob id with a reference that the caller must give back
// with release.
func (c *BlobCache) acquire(ctx context.Context, id repo.ID) (*cachedBlob, error) {
	c.mu.Lock()
	if e, ok := c.items[id]; ok {
		c.lru.MoveToFront(e)
		b := e.Value.(*cachedBlob)
		b.refs++
		b.consumed = false // wanted again
		c.mu.Unlock()
		return b, nil
	}
	ld := c.startLocked(id)
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		return nil, err // the load goes on for others
	}
	ld.waiters++
	c.mu.Unlock()
	select {
	case <-ld.done:
		return ld.blob, ld.err
	case <-ctx.Done():
		c.mu.Lock()
		if ld.finished {
			// The load ended meanwhile and counted us in.
			if ld.blob != nil {
				c.releaseLocked(ld.blob)
			}
		} else {
			ld.waiters--
		}
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (c *BlobCache) release(b *cachedBlob) {
	c.mu.Lock()
	c.releaseLocked(b)
	c.mu.Unlock()
}

func (c *BlobCache) releaseLocked(b *cachedBlob) {
	b.refs--
	if b.refs < 0 {
		panic("snapshot: blob released more often than acquired")
	}
	c.recycleLocked(b)
}

// recycleLocked puts b's buffer on the free list if nobody can see it.
func (c *BlobCache) recycleLocked(b *cachedBlob) {
	if b.refs > 0 || b.cached || b.pinned || b.buf == nil {
		return
	}
	buf := b.buf[:0]
	b.buf, b.data = nil, nil
	if int64(cap(buf)) > c.freeMax {
		return
	}
	c.free = append(c.free, buf)
	c.freeBytes += int64(cap(buf))
	for c.freeBytes > c.freeMax {
		c.freeBytes -= int64(cap(c.free[0]))
		c.free[0] = nil
		c.free = c.free[1:]
	}
}

// fits reports whether a buffer of capacity c may take n bytes without
// wasting more than about half of it.
func fits(c, n int) bool { return c >= n && c <= 2*n+bufRound }

// stealScan bounds how many blobs at the back of the LRU list getBuf looks
// at for a consumed one.
const stealScan = 8

// getBuf returns a buffer of length n: the smallest free one that fits,
// else the buffer of a consumed blob at the back of the LRU list (which
// is likely still in the CPU cache), else a new one.
func (c *BlobCache) getBuf(n int) []byte {
	c.mu.Lock()
	best := -1
	for i, b := range c.free {
		if fits(cap(b), n) && (best < 0 || cap(b) < cap(c.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		buf := c.free[best]
		copy(c.free[best:], c.free[best+1:])
		c.free[len(c.free)-1] = nil
		c.free = c.free[:len(c.free)-1]
		c.freeBytes -= int64(cap(buf))
		c.mu.Unlock()
		return buf[:n]
	}
	e := c.lru.Back()
	for k := 0; e != nil && k < stealScan; k++ {
		b := e.Value.(*cachedBlob)
		if !b.consumed {
			break // consumed blobs are at the back
		}
		if b.refs == 0 && !b.pinned && fits(cap(b.buf), n) {
			c.removeLocked(e)
			buf := b.buf
			b.buf, b.data = nil, nil
			c.mu.Unlock()
			return buf[:n]
		}
		e = e.Prev()
	}
	c.mu.Unlock()
	return make([]byte, n, (n+bufRound-1)/bufRound*bufRound)
}

// putBuf gives back a buffer from getBuf that no blob holds.
func (c *BlobCache) putBuf(buf []byte) {
	c.mu.Lock()
	c.recycleLocked(&cachedBlob{buf: buf})
	c.mu.Unlock()
}

// Prefetch starts loading blob id in the background unless it is cached,
// already loading, or too many prefetches are under way.
func (c *BlobCache) Prefetch(id repo.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prefetchLocked(id)
}

// prefetchLocked reports false when no more prefetches may start now.
func (c *BlobCache) prefetchLocked(id repo.ID) bool {
	if _, ok := c.items[id]; ok {
		return true
	}
	if _, ok := c.loads[id]; ok {
		return true
	}
	select {
	case c.prefetch <- struct{}{}:
	default:
		return false
	}
	ld := c.startLocked(id)
	go func() {
		<-ld.done
		<-c.prefetch
	}()
	return true
}

// startLocked returns the load of id, starting it if none is running.
func (c *BlobCache) startLocked(id repo.ID) *blobLoad {
	if ld, ok := c.loads[id]; ok {
		return ld
	}
	ld := &blobLoad{done: make(chan struct{})}
	c.loads[id] = ld
	go func() {
		// Detached from any caller: others may be waiting for this blob.
		buf, data, err := c.load(context.Background(), id)
		c.mu.Lock()
		delete(c.loads, id)
		ld.finished = true
		if err != nil {
			ld.err = err
		} else {
			b := &cachedBlob{id: id, buf: buf, data: data, refs: ld.waiters}
			c.addLocked(b)
			c.recycleLocked(b) // not cached and nobody waiting
			ld.blob = b
		}
		c.mu.Unlock()
		close(ld.done)
	}()
	return ld
}

// load reads, decrypts and verifies data blob id into a buffer from the
// free list, trying every known copy like repo.Repository.LoadBlob. It
// returns the buffer and the plaintext within it.
func (c *BlobCache) load(ctx context.Context, id repo.ID) (buf, data []byte, err error) {
	locs := c.r.LookupBlob(repo.DataBlob, id)
	if len(locs) == 0 {
		data, err := c.r.LoadBlob(ctx, repo.DataBlob, id, nil) // fails with LoadBlob's error
		return data, data, err
	}
	var lastErr error
	for _, pb := range locs {
		buf, data, err := c.loadCopy(ctx, pb)
		if err == nil {
			return buf, data, nil
		}
		lastErr = err
	}
	return nil, nil, lastErr
}

func (c *BlobCache) loadCopy(ctx context.Context, pb repo.PackedBlob) (buf, data []byte, err error) {
	raw := c.getBuf(int(pb.Length))
	h := repo.Handle{Type: repo.PackFile, Name: pb.Pack.String()}
	rd, err := c.r.Backend().Load(ctx, h, int(pb.Length), int64(pb.Offset))
	if err != nil {
		c.putBuf(raw)
		return nil, nil, err
	}
	_, err = io.ReadFull(rd, raw)
	rd.Close()
	if err != nil {
		c.putBuf(raw)
		return nil, nil, fmt.Errorf("read pack %v at %d: %w", pb.Pack.Str(), pb.Offset, err)
	}
	if !pb.IsCompressed() {
		// Decrypted in place: IV || ciphertext || MAC becomes
		// IV || plaintext || MAC, and nothing is moved.
		var dst []byte
		if len(raw) >= crypto.IVSize {
			dst = raw[crypto.IVSize:crypto.IVSize]
		}
		data, err := c.r.DecodeBlob(pb, raw, dst)
		if err != nil {
			c.putBuf(raw)
			return nil, nil, err
		}
		return raw, data, nil
	}
	dst := c.getBuf(int(pb.PlaintextLength()))
	data, err = c.r.DecodeBlob(pb, raw, dst[:0])
	c.putBuf(raw)
	if err != nil {
		c.putBuf(dst)
		return nil, nil, err
	}
	if len(data) == 0 || cap(dst) == 0 || &data[:1][0] != &dst[:1][0] {
		// Decompressed elsewhere (the index understated the size).
		c.putBuf(dst)
		return data, data, nil
	}
	return dst, data, nil
}

func (c *BlobCache) addLocked(b *cachedBlob) {
	n := int64(cap(b.buf))
	if n > c.max {
		return
	}
	if _, ok := c.items[b.id]; ok {
		return
	}
	c.items[b.id] = c.lru.PushFront(b)
	b.cached = true
	c.size += n
	for c.size > c.max {
		c.recycleLocked(c.removeLocked(c.lru.Back()))
	}
}

// removeLocked takes a blob out of the cache (not recycling its buffer).
func (c *BlobCache) removeLocked(e *list.Element) *cachedBlob {
	b := c.lru.Remove(e).(*cachedBlob)
	delete(c.items, b.id)
	b.cached = false
	c.size -= int64(cap(b.buf))
	return b
}

// consumedLocked moves b to the back of the LRU list: a reader has read
// all of it, so the kernel's page cache has it and it is the first to go
// (or to give its buffer to a new load).
func (c *BlobCache) consumedLocked(b *cachedBlob) {
	if e, ok := c.items[b.id]; ok && e.Value == b {
		c.lru.MoveToBack(e)
		b.consumed = true
	}
}

// Size is the number of plaintext bytes cached now (counting the buffers'
// full capacity).
func (c *BlobCache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// FileReader reads a file node's content through a BlobCache. It maps
// offsets to content blobs with the blob sizes from the index, so a read
// loads only the blobs it touches. Safe for concurrent use.
type FileReader struct {
	ctx     context.Context
	cache   *BlobCache
	content []repo.ID
	starts  []int64 // starts[i] = offset of blob i; starts[len(content)] = size
	// served[i] counts the bytes of blob i read so far; when it reaches
	// the blob's size the blob is probably not needed again.
	served []atomic.Int64

	// ReadAhead is how many blobs after the one a read touches are loaded
	// in the background (default 1; 0 after NewFileReader means 1, a
	// negative value turns read-ahead off), up to a quarter of the cache's
	// budget. Blobs this reader has read to the end are not loaded again.
	ReadAhead int
}

// ErrNotAFile is returned for nodes that have no content.
var ErrNotAFile = errors.New("not a regular file")

// NewFileReader prepares reads of node's content. ctx is used by ReadAt
// and WriteTo; ReadAtContext takes its own. It fails when a content blob
// is missing from the index.
func NewFileReader(ctx context.Context, r *repo.Repository, cache *BlobCache, node *snapshot.Node) (*FileReader, error) {
	if node.Type != snapshot.NodeFile {
		return nil, fmt.Errorf("read %s: %w (it is a %s)", node.Name, ErrNotAFile, node.Type)
	}
	f := &FileReader{ctx: ctx, cache: cache, content: node.Content, starts: make([]int64, len(node.Content)+1),
		served: make([]atomic.Int64, len(node.Content)), ReadAhead: 1}
	var off int64
	for i, id := range node.Content {
		locs := r.LookupBlob(repo.DataBlob, id)
		if len(locs) == 0 {
			return nil, fmt.Errorf("read %s: data blob %v: %w", node.Name, id.Str(), repo.ErrBlobNotFound)
		}
		f.starts[i] = off
		off += int64(locs[0].PlaintextLength())
	}
	f.starts[len(node.Content)] = off
	return f, nil
}

// Size is the content's length (the sum of its blobs' sizes).
func (f *FileReader) Size() int64 { return f.starts[len(f.content)] }

// ReadAt implements io.ReaderAt with the reader's context.
func (f *FileReader) ReadAt(p []byte, off int64) (int, error) {
	return f.ReadAtContext(f.ctx, p, off)
}

// blobAt returns the index of the blob holding off (< Size): the last
// with starts[i] <= off.
func (f *FileReader) blobAt(off int64) int {
	return sort.Search(len(f.content), func(i int) bool { return f.starts[i+1] > off })
}

// acquire returns blob i, checked against the size the index gives. It
// starts the read-ahead after i first, so that other cores load those
// blobs while this one waits for i.
func (f *FileReader) acquire(ctx context.Context, i int) (*cachedBlob, error) {
	f.readAhead(i)
	b, err := f.cache.acquire(ctx, f.content[i])
	if err != nil {
		return nil, err
	}
	if want := f.starts[i+1] - f.starts[i]; int64(len(b.data)) != want {
		f.cache.release(b)
		return nil, fmt.Errorf("data blob %v has %d bytes, the index says %d", f.content[i].Str(), len(b.data), want)
	}
	return b, nil
}

// consume notes that n bytes of blob i (held as b) were read; once all of
// it was, the cache may reuse it first. Call it with c.mu held.
func (f *FileReader) consumeLocked(i int, b *cachedBlob, n int) {
	size := f.starts[i+1] - f.starts[i]
	if now := f.served[i].Add(int64(n)); now >= size && now-int64(n) < size {
		f.cache.consumedLocked(b)
	}
}

// done reports whether all of blob i was read already.
func (f *FileReader) done(i int) bool { return f.served[i].Load() >= f.starts[i+1]-f.starts[i] }

// ReadAtContext reads len(p) bytes at off; at the end of the content it
// returns fewer bytes and io.EOF.
func (f *FileReader) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at %d: negative offset", off)
	}
	if off >= f.Size() {
		return 0, io.EOF
	}
	n := 0
	for i := f.blobAt(off); n < len(p) && i < len(f.content); i++ {
		b, err := f.acquire(ctx, i)
		if err != nil {
			return n, err
		}
		m := copy(p[n:], b.data[off+int64(n)-f.starts[i]:])
		n += m
		f.cache.mu.Lock()
		f.consumeLocked(i, b, m)
		f.cache.releaseLocked(b)
		f.cache.mu.Unlock()
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Span is up to n bytes of content at an offset, as slices of cached blobs
// (no copy). The slices stay valid until Release.
type Span struct {
	cache  *BlobCache
	fr     *FileReader
	first  int // index of blobs[0] in the content
	blobs  []*cachedBlob
	slices [][]byte
	n      int
	one    [1]*cachedBlob // storage for the common single-blob span
	oneS   [1][]byte
}

// Span returns the n bytes at off, fewer at the end of the content (none
// at or after it). The caller must call Release when done with them.
func (f *FileReader) Span(ctx context.Context, off int64, n int) (*Span, error) {
	if off < 0 {
		return nil, fmt.Errorf("read at %d: negative offset", off)
	}
	s := &Span{cache: f.cache, fr: f}
	s.blobs, s.slices = s.one[:0], s.oneS[:0]
	size := f.Size()
	if off >= size || n <= 0 {
		return s, nil
	}
	n = int(min(int64(n), size-off))
	s.first = f.blobAt(off)
	for i := s.first; s.n < n; i++ {
		b, err := f.acquire(ctx, i)
		if err != nil {
			s.Release()
			return nil, err
		}
		s.blobs = append(s.blobs, b)
		from := off + int64(s.n) - f.starts[i]
		part := b.data[from:min(int64(len(b.data)), from+int64(n-s.n))]
		s.slices = append(s.slices, part)
		s.n += len(part)
	}
	return s, nil
}

// Len is the number of bytes in the span.
func (s *Span) Len() int { return s.n }

// Slices returns the span's bytes, in order. Callers must not modify them.
func (s *Span) Slices() [][]byte { return s.slices }

// CopyTo copies the span into p and returns the number of bytes copied.
func (s *Span) CopyTo(p []byte) int {
	n := 0
	for _, sl := range s.slices {
		n += copy(p[n:], sl)
	}
	return n
}

// Release gives the blobs back to the cache; the slices must not be used
// afterwards. Calling it again does nothing.
func (s *Span) Release() {
	if len(s.blobs) == 0 {
		s.slices = nil
		return
	}
	s.cache.mu.Lock()
	for k, b := range s.blobs {
		s.fr.consumeLocked(s.first+k, b, len(s.slices[k]))
		s.cache.releaseLocked(b)
	}
	s.cache.mu.Unlock()
	s.blobs, s.slices = nil, nil
}

func (f *FileReader) readAhead(i int) {
	ra := f.ReadAhead
	if ra == 0 {
		ra = 1
	}
	if ra < 0 || i+1 >= len(f.content) {
		return
	}
	// At most a quarter of the cache ahead, so that read-ahead of large
	// blobs does not evict what it loaded before it is read.
	limit := f.starts[i+1] + f.cache.max/4
	f.cache.mu.Lock()
	for j := i + 1; j <= i+ra && j < len(f.content) && f.starts[j] < limit; j++ {
		if f.done(j) {
			continue // a late read of an earlier part: j was read already
		}
		if !f.cache.prefetchLocked(f.content[j]) {
			break
		}
	}
	f.cache.mu.Unlock()
}

// WriteTo writes the whole content to w, loading blobs ahead of the writer.
func (f *FileReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for i := range f.content {
		b, err := f.acquire(f.ctx, i)
		if err != nil {
			return n, err
		}
		m, err := w.Write(b.data) // a Writer must not keep the slice
		f.cache.mu.Lock()
		f.consumeLocked(i, b, len(b.data))
		f.cache.releaseLocked(b)
		f.cache.mu.Unlock()
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
