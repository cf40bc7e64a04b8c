// Package chunk cuts files into content-defined chunks with the repository's
// polynomial, so cut points (and hence dedup) match restic's.
package chunk

import (
	"io"

	"github.com/restic/chunker"
)

// Pol is the chunker polynomial stored in a repository's config.
type Pol = chunker.Pol

// Size limits of chunks (restic's: 512 KiB to 8 MiB, 1 MiB on average).
const (
	MinSize = chunker.MinSize
	MaxSize = chunker.MaxSize
)

// Chunker splits one stream at a time; Reset reuses its buffers.
type Chunker struct {
	c *chunker.Chunker
}

// New returns a chunker reading from rd.
func New(rd io.Reader, pol Pol) *Chunker {
	return &Chunker{c: chunker.New(rd, pol)}
}

// Reset starts over on a new stream, keeping buffers.
func (c *Chunker) Reset(rd io.Reader, pol Pol) { c.c.Reset(rd, pol) }

// Next returns the next chunk, stored in buf when it fits (pass a buffer of
// MaxSize to avoid allocations). It returns io.EOF at the end.
func (c *Chunker) Next(buf []byte) ([]byte, error) {
	ch, err := c.c.Next(buf)
	if err != nil {
		return nil, err
	}
	return ch.Data, nil
}

// RandomPolynomial picks a new irreducible polynomial for a new repository.
func RandomPolynomial() (Pol, error) { return chunker.RandomPolynomial() }
