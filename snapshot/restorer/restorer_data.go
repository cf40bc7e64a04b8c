package restorer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cairn-backup/cairn/repo"
	"golang.org/x/sys/unix"
)

// maxRangeGap is the largest run of unneeded bytes read through rather than
// starting a new range request; below it one request beats two.
const maxRangeGap = 4 << 20

// maxBlobLen bounds a data blob's stored and plaintext size (the chunker
// makes at most 8 MiB), so a damaged index cannot make us allocate gigabytes.
const maxBlobLen = 64 << 20

// dataWorker owns the buffers one pack reader reuses.
type dataWorker struct {
	raw, plain []byte
	dbuf       []byte // aligned staging for O_DIRECT writes
	dec        []byte // aligned plaintext for files written with O_DIRECT
	br         *bufio.Reader
}

// reader buffers a range stream: small blobs then cost no syscall each,
// while blobs larger than the buffer are read straight into w.raw.
func (w *dataWorker) reader(rd io.Reader) *bufio.Reader {
	if w.br == nil {
		w.br = bufio.NewReaderSize(rd, 256<<10)
	} else {
		w.br.Reset(rd)
	}
	return w.br
}

// restoreItem reads a work item's blobs (one pack's, sorted by offset) in
// as few contiguous ranges as the gaps between them allow, streaming blob
// by blob.
func (rs *restorer) restoreItem(ctx context.Context, it workItem, w *dataWorker) {
	blobs := it.blobs
	for start := 0; start < len(blobs); {
		end := start + 1
		for end < len(blobs) {
			prev, next := blobs[end-1].locs[0], blobs[end].locs[0]
			prevEnd := int64(prev.Offset) + int64(prev.Length)
			if int64(next.Offset) < prevEnd || int64(next.Offset)-prevEnd > maxRangeGap {
				break
			}
			end++
		}
		rs.restoreRange(ctx, it.pack, blobs[start:end], w)
		start = end
	}
}

func (rs *restorer) restoreRange(ctx context.Context, pj *packJob, blobs []*blobJob, w *dataWorker) {
	first, last := blobs[0].locs[0], blobs[len(blobs)-1].locs[0]
	offset := int64(first.Offset)
	length := int64(last.Offset) + int64(last.Length) - offset
	h := repo.Handle{Type: repo.PackFile, Name: pj.id.String()}
	rd, err := rs.repo.Backend().Load(ctx, h, int(length), offset)
	if err != nil {
		for _, b := range blobs {
			rs.blobFailed(ctx, b, fmt.Errorf("load pack %v: %w", pj.id.Str(), err), w)
		}
		return
	}
	defer rd.Close()
	br := w.reader(rd)
	pos := offset
	for i, b := range blobs {
		loc := b.locs[0]
		raw, err := rs.readBlob(br, loc, pos, w)
		if err != nil {
			// The stream is unusable after a read error: every blob left in
			// the range needs another way in.
			for _, b := range blobs[i:] {
				rs.blobFailed(ctx, b, err, w)
			}
			return
		}
		pos = int64(loc.Offset) + int64(loc.Length)
		plain, err := rs.decodeFor(b, loc, raw, w)
		if err != nil {
			rs.blobFailed(ctx, b, err, w)
			continue
		}
		rs.writeBlob(b, plain, w)
	}
}

// readBlob reads loc's stored bytes from a stream positioned at pos,
// skipping the gap before it.
func (rs *restorer) readBlob(rd *bufio.Reader, loc repo.PackedBlob, pos int64, w *dataWorker) ([]byte, error) {
	if gap := int64(loc.Offset) - pos; gap > 0 {
		if _, err := rd.Discard(int(gap)); err != nil {
			return nil, fmt.Errorf("read pack %v: %w", loc.Pack.Str(), err)
		}
	}
	return readRaw(rd, loc, w)
}

func readRaw(rd io.Reader, loc repo.PackedBlob, w *dataWorker) ([]byte, error) {
	if loc.Length > maxBlobLen || loc.UncompressedLength > maxBlobLen {
		return nil, fmt.Errorf("blob %v in pack %v: implausible size %d", loc.ID.Str(), loc.Pack.Str(), max(loc.Length, loc.UncompressedLength))
	}
	if cap(w.raw) < int(loc.Length) {
		w.raw = make([]byte, bufSize(int(loc.Length)))
	}
	raw := w.raw[:loc.Length]
	if _, err := io.ReadFull(rd, raw); err != nil {
		return nil, fmt.Errorf("read pack %v at %d: %w", loc.Pack.Str(), loc.Offset, err)
	}
	return raw, nil
}

// bufSize rounds a buffer size up to a power of two, so a worker's buffers
// grow a few times over a restore rather than with every larger blob.
func bufSize(n int) int {
	size := 64 << 10
	for size < n {
		size *= 2
	}
	return size
}

// errBlobSize: a blob decoded to another length than the index gave it,
// which placed every later blob of the file at a wrong offset.
var errBlobSize = errors.New("blob length differs from the index")

// decode decrypts a blob into the worker's plaintext buffer (into dst,
// if not nil) and checks it: DecodeBlob checks its SHA-256 against its ID,
// and here its length against want, the length the file's layout was
// planned with.
func (rs *restorer) decode(loc repo.PackedBlob, raw []byte, want uint32, w *dataWorker, dst []byte) ([]byte, error) {
	var plain []byte
	var err error
	if dst != nil {
		plain, err = rs.repo.DecodeBlob(loc, raw, dst)
	} else if !loc.IsCompressed() {
		// Decrypted in place: raw is not needed afterwards.
		plain, err = rs.repo.DecodeBlob(loc, raw, raw[:0])
	} else {
		if n := int(loc.PlaintextLength()); cap(w.plain) < n {
			w.plain = make([]byte, 0, bufSize(n))
		}
		plain, err = rs.repo.DecodeBlob(loc, raw, w.plain[:0])
		if err == nil && cap(plain) > cap(w.plain) {
			w.plain = plain[:0]
		}
	}
	if err != nil {
		return nil, err
	}
	if len(plain) != int(want) {
		return nil, fmt.Errorf("blob %v in pack %v: %w: it holds %d bytes, the index says %d (run `cairn repair index`)",
			loc.ID.Str(), loc.Pack.Str(), errBlobSize, len(plain), want)
	}
	return plain, nil
}

// decodeFor decodes blob b; for a file written with O_DIRECT, into a
// buffer placed so that each plaintext byte sits at its file offset's
// place within a block: its whole blocks then go to the disk with no copy.
func (rs *restorer) decodeFor(b *blobJob, loc repo.PackedBlob, raw []byte, w *dataWorker) ([]byte, error) {
	t := b.targets[0]
	if t.file.direct == nil || rs.noDirect.Load() {
		return rs.decode(loc, raw, b.size, w, nil)
	}
	pad := int(t.off % directBlock)
	w.dec = alignedBuf(w.dec, pad+int(b.size))
	return rs.decode(loc, raw, b.size, w, w.dec[pad:pad])
}

// blobFailed tries the blob's other copies one by one; if none works, every
// file that needed it fails.
func (rs *restorer) blobFailed(ctx context.Context, b *blobJob, cause error, w *dataWorker) {
	for _, loc := range b.locs[1:] {
		if ctx.Err() != nil {
			return // the restore is being abandoned; no point in reporting files
		}
		if loc.Pack == b.locs[0].Pack && loc.Offset == b.locs[0].Offset {
			continue
		}
		plain, err := rs.loadCopy(ctx, loc, b.size, w)
		if err == nil {
			rs.writeBlob(b, plain, w)
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	for _, t := range b.targets {
		rs.failFile(t.file, fmt.Errorf("data blob %v: %w", b.id.Str(), cause))
		rs.doneWrite(t.file, -1, false)
	}
}

func (rs *restorer) loadCopy(ctx context.Context, loc repo.PackedBlob, want uint32, w *dataWorker) ([]byte, error) {
	h := repo.Handle{Type: repo.PackFile, Name: loc.Pack.String()}
	rd, err := rs.repo.Backend().Load(ctx, h, int(loc.Length), int64(loc.Offset))
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	// Not through w.br: the range being streamed may still need it.
	raw, err := readRaw(rd, loc, w)
	if err != nil {
		return nil, err
	}
	return rs.decode(loc, raw, want, w, nil)
}

// writeBlob writes plain at every target. Targets of one file are adjacent
// (they were appended file by file), so one descriptor serves them all.
func (rs *restorer) writeBlob(b *blobJob, plain []byte, w *dataWorker) {
	zero := isZero(plain)
	for i := 0; i < len(b.targets); {
		fj := b.targets[i].file
		j := i
		for j < len(b.targets) && b.targets[j].file == fj {
			j++
		}
		rs.writeFile(fj, b.targets[i:j], plain, zero, w)
		i = j
	}
}

func (rs *restorer) writeFile(fj *fileJob, targets []blobTarget, plain []byte, zero bool, w *dataWorker) {
	fd := -1
	exact := false
	if !fj.bad.Load() {
		var err error
		if fd, exact, err = rs.openFile(fj); err != nil {
			rs.failFile(fj, err)
		}
	}
	for k, t := range targets {
		if fd >= 0 && !fj.bad.Load() {
			// All-zero blobs stay holes in the new file; the final
			// truncate gives it its size should they come last.
			var err error
			if zero {
				fj.sparse.Store(true)
			}
			if fj.direct != nil {
				err = rs.writeDirect(fj, fd, plain, t.off, zero, w)
			} else if !zero {
				err = pwriteAll(fd, plain, t.off)
			}
			if err != nil {
				rs.failFile(fj, &os.PathError{Op: "write", Path: rs.fs.display(fj.rel), Err: err})
			}
			rs.prog.Bytes.Add(uint64(len(plain)))
		}
		if k == len(targets)-1 {
			rs.doneWrite(fj, fd, exact) // closes fd
		} else {
			rs.doneWrite(fj, -1, false)
		}
	}
}

func pwriteAll(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, off)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// openFile creates the file on its first write, or opens it again. exact
// reports a file created with its final mode.
func (rs *restorer) openFile(fj *fileJob) (fd int, exact bool, err error) {
	fj.mu.Lock()
	defer fj.mu.Unlock()
	if fj.created {
		flags := unix.O_WRONLY | rs.directFlag(fj)
		fd, err = rs.reopen(fj, flags)
		if errors.Is(err, unix.EINVAL) && flags&unix.O_DIRECT != 0 {
			rs.noDirect.Store(true)
			fd, err = rs.reopen(fj, unix.O_WRONLY)
		}
		return fd, false, err
	}
	return rs.createFile(fj)
}

// doneWrite counts one write of fj as done (or given up). The write that
// completes the file sets its metadata through fd (the mode too, unless
// exact). fd, if any, is closed.
func (rs *restorer) doneWrite(fj *fileJob, fd int, exact bool) {
	last := fj.remaining.Add(-1) == 0
	if last && !fj.bad.Load() {
		var err error
		if fd < 0 {
			fd, err = rs.reopen(fj, unix.O_WRONLY)
			exact = false
		}
		if err == nil && fj.direct != nil {
			if n := fj.direct.left(); n > 0 {
				err = fmt.Errorf("%s: internal error: %d partly written blocks left", rs.fs.display(fj.rel), n)
			}
		}
		if err == nil && fj.sparse.Load() {
			if err = unix.Ftruncate(fd, fj.size); err != nil {
				err = &os.PathError{Op: "truncate", Path: rs.fs.display(fj.rel), Err: err}
			}
		}
		if err == nil {
			err = applyFdMeta(fd, rs.fs.display(fj.rel), fj.node, !exact, fj.dir.fresh)
		}
		if err != nil {
			rs.failFile(fj, err)
		} else {
			rs.prog.Files.Add(1)
			rs.prog.SetCurrent(fj.snap)
		}
	}
	if fd >= 0 {
		if err := unix.Close(fd); err != nil && !fj.bad.Load() {
			rs.failFile(fj, &os.PathError{Op: "close", Path: rs.fs.display(fj.rel), Err: err})
		}
	}
}

var zeroBuf = make([]byte, 64<<10)

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroBuf))
		if !bytes.Equal(b[:n], zeroBuf[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
