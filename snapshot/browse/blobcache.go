package browse

import (
	"container/list"
	"context"
	"runtime"
	"sync"

	"github.com/cairn-backup/cairn/repo"
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
		c.finish(id, ld, buf, data, err)
	}()
	return ld
}

// finish ends load ld of blob id with its result and wakes its waiters.
func (c *BlobCache) finish(id repo.ID, ld *blobLoad, buf, data []byte, err error) {
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
}

// load loads data blob id through repo.Repository.LoadBlobInto into a
// buffer from the free list. It returns the buffer and the plaintext
// within it.
func (c *BlobCache) load(ctx context.Context, id repo.ID) (buf, data []byte, err error) {
	locs := c.r.LookupBlob(repo.DataBlob, id)
	if len(locs) == 0 {
		data, err := c.r.LoadBlobInto(ctx, repo.DataBlob, id, nil) // fails with ErrBlobNotFound
		return data, data, err
	}
	buf = c.getBuf(locs[0].LoadBufSize())
	data, err = c.r.LoadBlobInto(ctx, repo.DataBlob, id, buf)
	if err != nil {
		c.putBuf(buf)
		return nil, nil, err
	}
	if !within(data, buf) {
		// Loaded elsewhere: another copy needed more room, or the index
		// understated the plaintext's size.
		c.putBuf(buf)
		return data, data, nil
	}
	return buf, data, nil
}

// within reports whether data lies in buf's backing array: slices of one
// array end at the same element.
func within(data, buf []byte) bool {
	return cap(data) > 0 && cap(buf) > 0 && &data[:cap(data)][cap(data)-1] == &buf[:cap(buf)][cap(buf)-1]
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
