package repo

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Loading one blob: look it up in the index, read its range of the pack,
// decrypt, decompress and check its hash, trying every copy the index lists.
// Callers that keep their own buffers (the blob cache) use LoadBlobInto
// and need not know how a blob is stored.

// LoadBlob reads, decrypts, decompresses and verifies a blob. It is
// LoadBlobInto: the plaintext reuses buf's storage when it is large enough.
func (r *Repository) LoadBlob(ctx context.Context, t BlobType, id ID, buf []byte) ([]byte, error) {
	return r.LoadBlobInto(ctx, t, id, buf)
}

// LoadBufSize is the capacity LoadBlobInto needs to load this copy of a
// blob into a caller's buffer without allocating: the stored length when
// it is decrypted in place, the plaintext length when it is decompressed.
func (b PackedBlob) LoadBufSize() int {
	if b.IsCompressed() {
		return int(b.UncompressedLength)
	}
	return int(b.Length)
}

// LoadBlobInto reads, decrypts, decompresses and verifies a blob (its
// SHA-256 against id, its stored length against the index), trying every
// copy the index lists before giving up. It uses buf's capacity (not its
// length) as working space: when cap(buf) >= LoadBufSize() of the copy
// that loads, the plaintext lies within buf[:cap(buf)], though not
// necessarily at its start; otherwise it is in new memory. buf's contents
// are overwritten either way.
func (r *Repository) LoadBlobInto(ctx context.Context, t BlobType, id ID, buf []byte) ([]byte, error) {
	locs := r.LookupBlob(t, id)
	if len(locs) == 0 {
		return nil, fmt.Errorf("load %v blob %v: %w", t, id.Str(), ErrBlobNotFound)
	}
	var lastErr error
	for _, pb := range locs {
		out, err := r.loadCopy(ctx, pb, buf)
		if err != nil && ctx.Err() == nil && r.evictCached(pb.Pack) {
			// A local copy damaged after it was verified (it fails its MAC
			// or hash, or is short): read the backend's once.
			out, err = r.loadCopy(ctx, pb, buf)
		}
		if err == nil {
			return out, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// loadCopy loads one copy of a blob; see LoadBlobInto.
func (r *Repository) loadCopy(ctx context.Context, pb PackedBlob, buf []byte) ([]byte, error) {
	return r.decodeCopy(pb, buf, func(raw []byte) error { return r.readPack(ctx, pb, raw) })
}

// readPack reads the stored bytes of pb into raw (len(raw) == pb.Length).
func (r *Repository) readPack(ctx context.Context, pb PackedBlob, raw []byte) error {
	rd, err := r.be.Load(ctx, Handle{Type: PackFile, Name: pb.Pack.String()}, len(raw), int64(pb.Offset))
	if err != nil {
		return err
	}
	defer rd.Close()
	if _, err := ioReadFull(rd, raw); err != nil {
		return fmt.Errorf("read pack %v at %d: %w", pb.Pack.Str(), pb.Offset, err)
	}
	return nil
}

// scratch holds the stored bytes of compressed blobs while they are
// decrypted and decompressed, so that streaming a file does not fault in
// a fresh buffer for every blob. Unlike a sync.Pool, it keeps its buffers
// across garbage collections, up to scratchMax bytes.
var scratch struct {
	mu    sync.Mutex
	bufs  [][]byte
	bytes int
}

const scratchMax = 16 << 20

// getScratch returns a buffer of capacity >= n: the smallest kept one
// that fits, else a new one.
func getScratch(n int) []byte {
	scratch.mu.Lock()
	best := -1
	for i, b := range scratch.bufs {
		if cap(b) >= n && (best < 0 || cap(b) < cap(scratch.bufs[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := scratch.bufs[best]
		scratch.bufs = slices.Delete(scratch.bufs, best, best+1)
		scratch.bytes -= cap(b)
		scratch.mu.Unlock()
		return b[:0]
	}
	scratch.mu.Unlock()
	const round = 64 << 10 // so that a buffer fits blobs of slightly different sizes
	return make([]byte, 0, (n+round-1)/round*round)
}

// putScratch keeps b for reuse, dropping the oldest kept buffers to stay
// within the budget.
func putScratch(b []byte) {
	if cap(b) > scratchMax {
		return
	}
	scratch.mu.Lock()
	for scratch.bytes+cap(b) > scratchMax {
		scratch.bytes -= cap(scratch.bufs[0])
		scratch.bufs[0] = nil
		scratch.bufs = scratch.bufs[1:]
	}
	scratch.bufs = append(scratch.bufs, b[:0])
	scratch.bytes += cap(b)
	scratch.mu.Unlock()
}
