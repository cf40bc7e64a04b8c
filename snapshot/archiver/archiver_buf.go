package archiver

import (
	"github.com/cairn-backup/cairn/chunk"
	"golang.org/x/sys/unix"
)

// bufPool hands out chunk buffers of chunk.MaxSize; at most n exist, which
// bounds the file data in flight. They are anonymous mappings outside the
// Go heap: the kernel backs only the pages chunks actually touched (chunks
// average ~1.5 MiB), and they do not raise the GC's heap goal, which would
// let as much garbage again pile up before a collection.
type bufPool struct {
	free   chan []byte
	tokens chan struct{}
}

func newBufPool(n int) *bufPool {
	p := &bufPool{free: make(chan []byte, n), tokens: make(chan struct{}, n)}
	for range n {
		p.tokens <- struct{}{}
	}
	return p
}

// get returns a free buffer, waiting while all exist and are in use.
func (p *bufPool) get() []byte {
	select {
	case b := <-p.free:
		return b
	default:
	}
	select {
	case b := <-p.free:
		return b
	case <-p.tokens:
		b, err := unix.Mmap(-1, 0, chunk.MaxSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return make([]byte, chunk.MaxSize)
		}
		// Huge pages where the kernel allows them: reads fill a buffer
		// with a fault per 2 MiB instead of per 4 KiB.
		_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
		return b
	}
}

func (p *bufPool) put(b []byte) { p.free <- b[:cap(b)] }

// release unmaps the free buffers. Call it only when no buffer is in use
// and nothing can use one any more: a retained slice would fault.
func (p *bufPool) release() {
	for {
		select {
		case b := <-p.free:
			_ = unix.Munmap(b) // fails harmlessly for heap fallbacks
			p.tokens <- struct{}{}
		default:
			return
		}
	}
}
