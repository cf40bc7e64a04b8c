package browse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync/atomic"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

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
// starts the read-ahead first (with i itself when it is missing), so that
// the blobs after i load while this one waits for i.
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

// readAhead starts the loads a read of blob i should not wait for later:
// i itself when it is missing, with the missing blobs right after it in the
// same pack (one backend read), and in the background the next ReadAhead
// blobs, as runs of one pack each. Background loads start only once half
// the window is missing, so that they come in runs rather than one blob per
// read; they are bounded by the cache's prefetch tokens and by a quarter of
// its budget, so that read-ahead does not evict what it loaded before it
// is read. Blobs of the window after may fill the gaps of a run (see
// runsLocked).
func (f *FileReader) readAhead(i int) {
	ra := f.ReadAhead
	if ra == 0 {
		ra = 1
	}
	if ra < 0 {
		return
	}
	limit := f.starts[i+1] + f.cache.max/4
	end := min(len(f.content), i+1+ra)
	for end > i+1 && f.starts[end-1] >= limit {
		end--
	}
	c := f.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	var js []int
	want := -1
	if f.missingLocked(i) {
		js, want = append(js, i), i
	} else {
		j := i + 1
		for j < end && !f.missingLocked(j) {
			j++
		}
		if j >= end || (j > i+1 && end-j < max(1, (end-i-1)/2)) {
			return // enough is loaded or loading ahead
		}
	}
	for j := i + 1; j < end; j++ {
		js = append(js, j)
	}
	// The next window's blobs may fill gaps between this one's in a pack.
	var fill []int
	for j := end; j < min(len(f.content), end+ra) && f.starts[j] < limit+c.max/4; j++ {
		fill = append(fill, j)
	}
	for _, rn := range f.runsLocked(js, fill, want) {
		token := !rn.has
		if token {
			select {
			case c.prefetch <- struct{}{}:
			default:
				return // enough loads under way
			}
		}
		c.loadRunLocked(rn.ids, rn.locs, token)
	}
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
