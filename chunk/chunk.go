// Package chunk cuts files into content-defined chunks with the repository's
// polynomial, at exactly the cut points of restic's chunker, so repositories
// written by restic and cairn dedup against each other.
//
// A chunk ends after the first byte, at least MinSize bytes into it, whose
// window fingerprint (see rabin.go) has its low 20 bits zero, or after
// MaxSize bytes. The fingerprints before MinSize are never computed, and the
// chunk is read straight into the caller's buffer.
package chunk

import (
	"errors"
	"fmt"
	"io"

	"github.com/restic/chunker"
)

// Pol is the chunker polynomial stored in a repository's config.
type Pol = chunker.Pol

// Size limits of chunks (restic's: 512 KiB to 8 MiB, 1 MiB on average).
const (
	MinSize = 512 << 10
	MaxSize = 8 << 20

	// splitMask: a cut where the fingerprint's low 20 bits are zero, one
	// position in 2^20, so chunks are MinSize plus ~1 MiB on average.
	splitMask = 1<<20 - 1
	// readStep is how much is read at a time past MinSize. What is read
	// past a cut is copied over to the next chunk, so smaller steps copy
	// less and make more read calls.
	readStep = 256 << 10
	// maxEmptyReads bounds reads that return neither bytes nor an error.
	maxEmptyReads = 100
)

// ErrBadReader is returned when the reader claims more bytes than it was
// given room for, or a negative count.
var ErrBadReader = errors.New("reader returned an impossible byte count")

// Chunker splits one stream at a time; Reset reuses its buffers.
type Chunker struct {
	rd  io.Reader
	pol Pol
	tab *tables
	// err ends the stream once what was read is handed out: io.EOF, the
	// reader's error, or why the polynomial cannot be used.
	err error
	// carry holds what was read past the last cut: the next chunk's start.
	carry []byte

	min, max int
	mask     uint64
}

// New returns a chunker reading from rd.
func New(rd io.Reader, pol Pol) *Chunker {
	c := &Chunker{}
	c.Reset(rd, pol)
	return c
}

// newSized is New with other limits, for tests against restic's chunker
// with small chunks; min must be above windowSize and at most max.
func newSized(rd io.Reader, pol Pol, min, max int, mask uint64) *Chunker {
	c := New(rd, pol)
	c.min, c.max, c.mask = min, max, mask
	return c
}

// Reset starts over on a new stream, keeping buffers.
func (c *Chunker) Reset(rd io.Reader, pol Pol) {
	c.rd = rd
	c.err = nil
	c.carry = c.carry[:0]
	c.min, c.max, c.mask = MinSize, MaxSize, splitMask
	if c.tab == nil || pol != c.pol {
		c.pol = pol
		c.tab, c.err = tablesFor(pol)
	}
}

// Next returns the next chunk, stored in buf when it fits (pass a buffer of
// MaxSize to avoid allocations). It returns io.EOF at the end, and the
// reader's error (after the chunks cut before it) when reading fails.
func (c *Chunker) Next(buf []byte) ([]byte, error) {
	if c.tab == nil {
		return nil, c.err
	}
	if c.rd == nil && c.err == nil {
		c.err = errors.New("chunker has no reader: Reset it with one")
	}
	data := append(buf[:0], c.carry...)
	c.carry = c.carry[:0]
	// next is the next position whose fingerprint is to be checked; d is
	// the fingerprint at the one before it.
	next := c.min - 1
	var d uint64
	for {
		if end := min(len(data), c.max-1); end > next {
			if next == c.min-1 {
				d = c.tab.warm(data[next-windowSize : next])
			}
			var p int
			p, d = c.tab.scan(data[next-windowSize:end], d, c.mask)
			if p >= 0 {
				return c.cut(data, next-windowSize+p+1), nil
			}
			next = end
		}
		if len(data) >= c.max {
			return c.cut(data, c.max), nil
		}
		if c.err != nil {
			if c.err == io.EOF && len(data) > 0 {
				return data, nil
			}
			return nil, c.err
		}
		want := max(len(data)+readStep, c.min+readStep)
		want = min(want, c.max)
		if want > cap(data) {
			grown := make([]byte, len(data), max(want, min(2*cap(data), c.max)))
			copy(grown, data)
			data = grown
		}
		n, err := c.read(data[len(data):want])
		data = data[:len(data)+n]
		c.err = err
	}
}

// cut hands out data[:n] and keeps the rest for the next chunk.
func (c *Chunker) cut(data []byte, n int) []byte {
	if c.carry == nil {
		c.carry = make([]byte, 0, readStep)
	}
	c.carry = append(c.carry, data[n:]...)
	return data[:n]
}

// read reads into p, passing on any error the reader returns, and turns
// readers that return nothing forever or impossible counts into errors.
func (c *Chunker) read(p []byte) (int, error) {
	for range maxEmptyReads {
		n, err := c.rd.Read(p)
		if n < 0 || n > len(p) {
			return 0, fmt.Errorf("chunk: %w (%d for %d bytes): the stream is broken", ErrBadReader, n, len(p))
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, fmt.Errorf("chunk: %w", io.ErrNoProgress)
}

// RandomPolynomial picks a new irreducible polynomial for a new repository.
func RandomPolynomial() (Pol, error) { return chunker.RandomPolynomial() }
