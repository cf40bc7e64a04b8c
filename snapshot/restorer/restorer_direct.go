package restorer

import (
	"errors"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Files of directMinSize bytes and more are written with O_DIRECT, from
// the worker's buffer straight to the disk:
//   - no page cache is allocated and filled for data nobody reads next:
//     on a VM the first touch of a page the host has not backed costs a
//     trip to the hypervisor (about 15 us a page here), so the restore of
//     the bench's big set took 2.1-5.4 s of system time, mostly in
//     copy_folio_from_iter, and 1.4-2.1 s with O_DIRECT; and a node agent
//     restoring into a pod volume does not push the node's other workloads
//     out of the cache;
//   - no dirty pages pile up for writeback after the restore "finished".
//
// O_DIRECT needs whole, aligned blocks, and a blob's bytes start and end
// anywhere (content-defined chunks). The blocks a blob covers whole are
// written at once; the bytes it has in a block it shares with its
// neighbours wait in memory (an edge) until the block is complete, then it
// is written whole. The file's last block, if partial, goes through the
// page cache: padding it and truncating afterwards would make ext4 read
// the block back to zero its tail.
//
// Where the file system refuses O_DIRECT (EINVAL at open or write), the
// same writes go through the page cache, and later files are not tried.

// directMinSize: smaller files are written through the page cache, where
// a write or two costs less than O_DIRECT's synchronous ones. A variable
// for the tests.
var directMinSize int64 = 1 << 20

// directBlock is the alignment used: the page size, a multiple of every
// common logical block size.
const directBlock = 4096

// directFile holds a file's partly received blocks.
type directFile struct {
	mu    sync.Mutex
	edges map[int64]*edgeBlock // by block index
}

type edgeBlock struct {
	buf    [directBlock]byte
	filled int64
}

// left reports how many blocks are still partly written.
func (d *directFile) left() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.edges)
}

// directFlag is O_DIRECT when fj is written with it, for open; else 0.
func (rs *restorer) directFlag(fj *fileJob) int {
	if fj.direct != nil && !rs.noDirect.Load() {
		return unix.O_DIRECT
	}
	return 0
}

// aligned returns n bytes of the worker's staging buffer, aligned for
// O_DIRECT.
func (w *dataWorker) aligned(n int) []byte {
	w.dbuf = alignedBuf(w.dbuf, n)
	return w.dbuf[:n]
}

// alignedBuf returns buf if it holds n bytes, else a new buffer of at
// least n that starts on a block boundary.
func alignedBuf(buf []byte, n int) []byte {
	if cap(buf) >= n {
		return buf[:cap(buf)]
	}
	size := bufSize(n)
	raw := make([]byte, size+directBlock)
	pad := (directBlock - int(uintptr(unsafe.Pointer(&raw[0]))%directBlock)) % directBlock
	return raw[pad : pad+size : pad+size]
}

// writeDirect writes plain at off of fj's file: the whole blocks it covers
// now, its bytes in blocks shared with other blobs once those are complete.
// All-zero interiors stay holes.
func (rs *restorer) writeDirect(fj *fileJob, fd int, plain []byte, off int64, zero bool, w *dataWorker) error {
	if len(plain) == 0 {
		return nil
	}
	end := off + int64(len(plain))
	a := (off + directBlock - 1) / directBlock * directBlock
	b := end / directBlock * directBlock
	if a >= b {
		// No whole block: the blob lies in one block, or ends the first
		// where the next begins.
		if a > b || a == off || a == end {
			return rs.addEdge(fj, fd, plain, off, off, end, zero, w)
		}
		if err := rs.addEdge(fj, fd, plain, off, off, a, zero, w); err != nil {
			return err
		}
		return rs.addEdge(fj, fd, plain, off, a, end, zero, w)
	}
	if !zero {
		// Decoded in place for this file (decodeFor), the whole blocks
		// are aligned already; another target of the same blob is not.
		buf := plain[a-off : b-off]
		if uintptr(unsafe.Pointer(&buf[0]))%directBlock != 0 {
			buf = w.aligned(int(b - a))
			copy(buf, plain[a-off:b-off])
		}
		if err := rs.pwriteDirect(fd, buf, a); err != nil {
			return err
		}
	}
	if off < a {
		if err := rs.addEdge(fj, fd, plain, off, off, a, zero, w); err != nil {
			return err
		}
	}
	if b < end {
		return rs.addEdge(fj, fd, plain, off, b, end, zero, w)
	}
	return nil
}

// addEdge records plain's bytes [s, e) (file offsets; plain starts at off)
// in their block, and writes the block once every byte of it has come.
func (rs *restorer) addEdge(fj *fileJob, fd int, plain []byte, off, s, e int64, zero bool, w *dataWorker) error {
	k := s / directBlock
	start := k * directBlock
	need := min(directBlock, fj.size-start)
	d := fj.direct
	d.mu.Lock()
	if d.edges == nil {
		d.edges = map[int64]*edgeBlock{}
	}
	eb := d.edges[k]
	if eb == nil {
		eb = &edgeBlock{}
		d.edges[k] = eb
	}
	if !zero {
		copy(eb.buf[s-start:], plain[s-off:e-off])
	}
	eb.filled += e - s
	complete := eb.filled >= need
	if complete {
		delete(d.edges, k)
	}
	d.mu.Unlock()
	if !complete {
		return nil
	}
	if need < directBlock {
		return pwriteBuffered(fd, eb.buf[:need], start)
	}
	buf := w.aligned(directBlock)
	copy(buf, eb.buf[:])
	return rs.pwriteDirect(fd, buf, start)
}

// pwriteDirect writes whole aligned blocks; if the file system turns
// O_DIRECT down after all, the descriptor drops it and later files are
// written through the page cache.
func (rs *restorer) pwriteDirect(fd int, buf []byte, off int64) error {
	err := pwriteAll(fd, buf, off)
	if errors.Is(err, unix.EINVAL) {
		if fl, ferr := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); ferr == nil && fl&unix.O_DIRECT != 0 {
			rs.noDirect.Store(true)
			if _, ferr := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_DIRECT); ferr == nil {
				err = pwriteAll(fd, buf, off)
			}
		}
	}
	return err
}

// pwriteBuffered writes through the page cache on a descriptor that may
// have O_DIRECT, which it keeps afterwards.
func pwriteBuffered(fd int, buf []byte, off int64) error {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_DIRECT == 0 {
		return pwriteAll(fd, buf, off)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_DIRECT); err != nil {
		return err
	}
	werr := pwriteAll(fd, buf, off)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl); err != nil && werr == nil {
		werr = err
	}
	return werr
}
