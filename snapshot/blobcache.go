package snapshot

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/cairn-backup/cairn/repo"
)

// DefaultBlobCacheSize is the byte budget dump and mount use for decrypted
// data blobs.
const DefaultBlobCacheSize = 64 << 20

// maxPrefetches bounds the background loads that read-ahead may start.
const maxPrefetches = 4

// BlobCache keeps decrypted data blobs in memory up to a byte budget,
// evicting the least recently used first. Concurrent requests for the same
// blob share one load, and a load goes on when the caller that started it
// gives up, so that others (and read-ahead) still profit from it. Safe for
// concurrent use.
type BlobCache struct {
	r   *repo.Repository
	max int64

	mu    sync.Mutex
	size  int64
	lru   *list.List // of *cachedBlob, front = most recently used
	items map[repo.ID]*list.Element
	loads map[repo.ID]*blobLoad

	prefetch chan struct{} // tokens for background loads
}

type cachedBlob struct {
	id   repo.ID
	data []byte
}

type blobLoad struct {
	done chan struct{}
	data []byte
	err  error
}

// NewBlobCache caches up to maxBytes of plaintext (DefaultBlobCacheSize if
// maxBytes <= 0).
func NewBlobCache(r *repo.Repository, maxBytes int64) *BlobCache {
	if maxBytes <= 0 {
		maxBytes = DefaultBlobCacheSize
	}
	c := &BlobCache{r: r, max: maxBytes, lru: list.New(),
		items: map[repo.ID]*list.Element{}, loads: map[repo.ID]*blobLoad{},
		prefetch: make(chan struct{}, maxPrefetches)}
	return c
}

// Get returns the plaintext of data blob id. Callers must not modify it.
func (c *BlobCache) Get(ctx context.Context, id repo.ID) ([]byte, error) {
	c.mu.Lock()
	if e, ok := c.items[id]; ok {
		c.lru.MoveToFront(e)
		data := e.Value.(*cachedBlob).data
		c.mu.Unlock()
		return data, nil
	}
	ld := c.startLocked(id)
	c.mu.Unlock()
	select {
	case <-ld.done:
		return ld.data, ld.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Prefetch starts loading blob id in the background unless it is cached,
// already loading, or too many prefetches are under way.
func (c *BlobCache) Prefetch(id repo.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[id]; ok {
		return
	}
	if _, ok := c.loads[id]; ok {
		return
	}
	select {
	case c.prefetch <- struct{}{}:
	default:
		return
	}
	ld := c.startLocked(id)
	go func() {
		<-ld.done
		<-c.prefetch
	}()
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
		ld.data, ld.err = c.r.LoadBlob(context.Background(), repo.DataBlob, id, nil)
		c.mu.Lock()
		delete(c.loads, id)
		if ld.err == nil {
			c.addLocked(id, ld.data)
		}
		c.mu.Unlock()
		close(ld.done)
	}()
	return ld
}

func (c *BlobCache) addLocked(id repo.ID, data []byte) {
	if int64(len(data)) > c.max {
		return
	}
	if _, ok := c.items[id]; ok {
		return
	}
	c.items[id] = c.lru.PushFront(&cachedBlob{id: id, data: data})
	c.size += int64(len(data))
	for c.size > c.max {
		old := c.lru.Remove(c.lru.Back()).(*cachedBlob)
		delete(c.items, old.id)
		c.size -= int64(len(old.data))
	}
}

// Size is the number of plaintext bytes cached now.
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

	// ReadAhead is how many blobs after the one a read touches are loaded
	// in the background (default 1; 0 after NewFileReader means 1, a
	// negative value turns read-ahead off).
	ReadAhead int
}

// ErrNotAFile is returned for nodes that have no content.
var ErrNotAFile = errors.New("not a regular file")

// NewFileReader prepares reads of node's content. ctx is used by ReadAt
// and WriteTo; ReadAtContext takes its own. It fails when a content blob
// is missing from the index.
func NewFileReader(ctx context.Context, r *repo.Repository, cache *BlobCache, node *Node) (*FileReader, error) {
	if node.Type != NodeFile {
		return nil, fmt.Errorf("read %s: %w (it is a %s)", node.Name, ErrNotAFile, node.Type)
	}
	f := &FileReader{ctx: ctx, cache: cache, content: node.Content, starts: make([]int64, len(node.Content)+1), ReadAhead: 1}
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

// ReadAtContext reads len(p) bytes at off; at the end of the content it
// returns fewer bytes and io.EOF.
func (f *FileReader) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at %d: negative offset", off)
	}
	size := f.Size()
	if off >= size {
		return 0, io.EOF
	}
	// i is the blob holding off: the last with starts[i] <= off.
	i := sort.Search(len(f.content), func(i int) bool { return f.starts[i+1] > off })
	n := 0
	for n < len(p) && i < len(f.content) {
		data, err := f.cache.Get(ctx, f.content[i])
		if err != nil {
			return n, err
		}
		f.readAhead(i)
		blobOff := off + int64(n) - f.starts[i]
		if want := f.starts[i+1] - f.starts[i]; int64(len(data)) != want {
			return n, fmt.Errorf("data blob %v has %d bytes, the index says %d", f.content[i].Str(), len(data), want)
		}
		n += copy(p[n:], data[blobOff:])
		i++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *FileReader) readAhead(i int) {
	ra := f.ReadAhead
	if ra == 0 {
		ra = 1
	}
	for j := i + 1; j <= i+ra && j < len(f.content); j++ {
		f.cache.Prefetch(f.content[j])
	}
}

// WriteTo writes the whole content to w, loading blobs ahead of the writer.
func (f *FileReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for i, id := range f.content {
		data, err := f.cache.Get(f.ctx, id)
		if err != nil {
			return n, err
		}
		f.readAhead(i)
		m, err := w.Write(data)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
