package repo

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directAlign is the alignment direct I/O asks of buffers, offsets and
// lengths: 4 KiB satisfies every logical block size in use.
const directAlign = 4096

// packBuf is the memory of one pack being assembled: an anonymous
// mapping, so it is aligned for direct I/O and, unlike a slice on the Go
// heap, does not raise the garbage collector's goal by its size.
type packBuf struct {
	mem   []byte // the mapping; b is a prefix of it
	b     []byte
	slots *packSlots
}

// packSlots bounds the packs in memory at once: the writers' open packs
// and those the uploaders hold. A writer that needs a new pack while all
// slots are taken waits for an uploader to finish one. Buffers are kept
// for reuse until close.
type packSlots struct {
	sem  chan struct{}
	size int // initial capacity of a buffer
	mu   sync.Mutex
	free []*packBuf
}

// newPackSlots allows n packs of about packSize bytes in memory. The
// mapping leaves room for the blob that crosses packSize (a pack is full
// once it reaches it), up to the largest chunk: only the pages written to
// take memory. A larger blob (a huge directory's tree) grows it.
func newPackSlots(n, packSize int) *packSlots {
	return &packSlots{sem: make(chan struct{}, n), size: packSize + maxChunkBlob + directAlign}
}

// maxChunkBlob is the largest data blob the archiver makes, sealed:
// chunk.MaxSize (not imported: repo stays below chunk) and the crypto
// overhead.
const maxChunkBlob = 8<<20 + 64

func (s *packSlots) get() *packBuf {
	s.sem <- struct{}{}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free = s.free[:n-1]
		return b
	}
	return &packBuf{slots: s}
}

func (b *packBuf) put() {
	s := b.slots
	b.b = b.b[:0]
	s.mu.Lock()
	s.free = append(s.free, b)
	s.mu.Unlock()
	<-s.sem
}

// close unmaps the buffers given back; none may be in use.
func (s *packSlots) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.free {
		b.unmap()
	}
	s.free = nil
}

// append adds p, growing the mapping when it is full.
func (b *packBuf) append(p []byte) {
	b.grow(len(p))
	b.b = append(b.b, p...)
}

// grow makes room for n more bytes, moving the contents to a larger
// mapping if needed; nobody may hold a slice of the old one.
func (b *packBuf) grow(n int) {
	if need := len(b.b) + n; need > len(b.mem) {
		size := max(b.slots.size, 2*len(b.mem), need+directAlign)
		mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			panic(fmt.Sprintf("pack buffer: map %d bytes: %v", size, err))
		}
		// Huge pages where the kernel allows them: a fault per 2 MiB
		// instead of per 4 KiB as a pack is first filled.
		_ = unix.Madvise(mem, unix.MADV_HUGEPAGE)
		used := copy(mem, b.b)
		b.unmap()
		b.mem, b.b = mem, mem[:used]
	}
}

func (b *packBuf) unmap() {
	if b.mem != nil {
		unix.Munmap(b.mem)
		b.mem, b.b = nil, nil
	}
}

// writeTemp writes a finished pack into a new file in dir, synced, and
// returns its path. It writes by direct I/O when the filesystem allows it
// (padded to the alignment, then truncated), through the page cache
// otherwise.
func writeTemp(dir string, pb *packBuf) (string, error) {
	path, fd, direct, err := createTemp(dir)
	if err != nil {
		return "", fmt.Errorf("create pack temp file: %w", diskFull(err))
	}
	if err = writePack(fd, pb.b, direct); err == nil {
		err = retryIntr(func() error { return unix.Fsync(fd) })
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlink(path)
		return "", fmt.Errorf("write pack temp file: %w", diskFull(err))
	}
	return path, nil
}

// createTemp creates a new file in dir, for direct I/O when the
// filesystem supports it.
func createTemp(dir string) (string, int, bool, error) {
	var rnd [8]byte
	for range 100 {
		rand.Read(rnd[:])
		path := filepath.Join(dir, "pack-"+hex.EncodeToString(rnd[:]))
		flags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_CLOEXEC
		fd, err := unix.Open(path, flags|unix.O_DIRECT, 0o600)
		direct := err == nil
		if errors.Is(err, unix.EINVAL) { // no direct I/O here (tmpfs, some FUSE)
			fd, err = unix.Open(path, flags, 0o600)
		}
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EINTR) {
			continue
		}
		return path, fd, direct, err
	}
	return "", -1, false, fmt.Errorf("no unused temp file name in %s", dir)
}

// writePack writes data at the start of fd. Direct I/O needs an aligned
// buffer and length: data is padded with zeros within its capacity and
// the file cut back to its length. A buffer that cannot be, or a
// filesystem that refuses the write, gets a plain write.
func writePack(fd int, data []byte, direct bool) error {
	if direct {
		padded := (len(data) + directAlign - 1) &^ (directAlign - 1)
		aligned := len(data) > 0 && uintptr(unsafe.Pointer(&data[0]))&(directAlign-1) == 0
		if aligned && cap(data) >= padded {
			p := data[:padded]
			clear(p[len(data):])
			err := pwriteAll(fd, p)
			if err == nil {
				return retryIntr(func() error { return unix.Ftruncate(fd, int64(len(data))) })
			}
			if !errors.Is(err, unix.EINVAL) {
				return err
			}
		}
		// Plain writes from here on.
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err == nil {
			_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_DIRECT)
		}
		if err != nil {
			return err
		}
		if err := retryIntr(func() error { return unix.Ftruncate(fd, 0) }); err != nil {
			return err
		}
	}
	return pwriteAll(fd, data)
}

func pwriteAll(fd int, p []byte) error {
	off := 0
	for off < len(p) {
		n, err := unix.Pwrite(fd, p[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return unix.EIO
		}
		off += n
	}
	return nil
}

func retryIntr(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}
