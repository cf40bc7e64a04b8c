package repo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cairn-backup/cairn/crypto"
)

// Loading a run of blobs: over a network each backend read costs a round
// trip, so blobs that lie next to each other in one pack (the blobs of one
// file usually do) are read with one ranged read and decoded one by one as
// the bytes stream in.

// MaxRunGap is the most bytes between two blobs that callers of LoadBlobRun
// should let it read and drop rather than end the run: cheaper than a
// second round trip.
const MaxRunGap = 256 << 10

// ErrNotARun is returned by LoadBlobRun for blobs that are not in one pack,
// in increasing order of offset, without overlap.
var ErrNotARun = errors.New("blobs are not a run of one pack")

// LoadBlobRun reads blobs (copies in one pack, sorted by offset, not
// overlapping) with one backend read, and decodes each as LoadBlobInto does
// with bufs[i] (may be nil) as blob i's working space. It calls done once
// for every blob, in order, as soon as that blob is decoded: with its
// plaintext or the reason it failed. A failed blob may still load on its own
// with LoadBlobInto, which tries the index's other copies. Callers keep gaps
// between the blobs small (MaxRunGap): their bytes are read and dropped.
func (r *Repository) LoadBlobRun(ctx context.Context, blobs []PackedBlob, bufs [][]byte, done func(i int, plain []byte, err error)) {
	fail := func(from int, err error) {
		for i := from; i < len(blobs); i++ {
			done(i, nil, err)
		}
	}
	if len(blobs) == 0 {
		return
	}
	if len(bufs) != len(blobs) {
		fail(0, fmt.Errorf("load %d blobs with %d buffers: %w", len(blobs), len(bufs), ErrNotARun))
		return
	}
	first, last := blobs[0], blobs[len(blobs)-1]
	for i := 1; i < len(blobs); i++ {
		prev, b := blobs[i-1], blobs[i]
		if b.Pack != first.Pack || uint64(b.Offset) < uint64(prev.Offset)+uint64(prev.Length) {
			fail(0, fmt.Errorf("blob %v after %v in pack %v: %w", b.ID.Str(), prev.ID.Str(), b.Pack.Str(), ErrNotARun))
			return
		}
	}
	length := uint64(last.Offset) + uint64(last.Length) - uint64(first.Offset)
	rd, err := r.be.Load(ctx, Handle{Type: PackFile, Name: first.Pack.String()}, int(length), int64(first.Offset))
	if err != nil {
		fail(0, fmt.Errorf("read pack %v at %d: %w", first.Pack.Str(), first.Offset, err))
		return
	}
	defer rd.Close()
	pos := uint64(first.Offset)
	for i, pb := range blobs {
		if gap := int64(uint64(pb.Offset) - pos); gap > 0 {
			if _, err := io.CopyN(io.Discard, rd, gap); err != nil {
				fail(i, fmt.Errorf("read pack %v at %d: %w", pb.Pack.Str(), pos, err))
				return
			}
		}
		pos = uint64(pb.Offset) + uint64(pb.Length)
		var readErr error
		plain, err := r.decodeCopy(pb, bufs[i], func(raw []byte) error {
			if _, err := io.ReadFull(rd, raw); err != nil {
				readErr = fmt.Errorf("read pack %v at %d: %w", pb.Pack.Str(), pb.Offset, err)
				return readErr
			}
			return nil
		})
		if readErr != nil {
			// The stream is broken: the blobs after this one cannot be read.
			fail(i, readErr)
			return
		}
		done(i, plain, err)
	}
}

// decodeCopy fills a copy's stored bytes with fill and decodes them into
// buf. A compressed blob is decrypted in scratch space and decompressed into
// buf; an uncompressed one is read into buf and decrypted in place (IV ||
// ciphertext || MAC becomes IV || plaintext || MAC; nothing is moved).
func (r *Repository) decodeCopy(pb PackedBlob, buf []byte, fill func(raw []byte) error) ([]byte, error) {
	if pb.IsCompressed() {
		raw := getScratch(int(pb.Length))[:pb.Length]
		defer putScratch(raw)
		if err := fill(raw); err != nil {
			return nil, err
		}
		return r.DecodeBlob(pb, raw, buf[:0])
	}
	raw := buf[:0]
	if cap(raw) < int(pb.Length) {
		raw = make([]byte, pb.Length)
	}
	raw = raw[:pb.Length]
	if err := fill(raw); err != nil {
		return nil, err
	}
	dst := raw[:0]
	if len(raw) >= crypto.IVSize {
		dst = raw[crypto.IVSize:crypto.IVSize]
	}
	return r.DecodeBlob(pb, raw, dst)
}
