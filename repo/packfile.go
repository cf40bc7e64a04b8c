package repo

import (
	"bytes"
	"context"
	"crypto/sha256"

	"github.com/cairn-backup/cairn/crypto"
)

// tempDirer is implemented by backends that offer a directory for pack
// temp files on the same filesystem as the repository.
type tempDirer interface{ TempDir() string }

// fileSaver is implemented by backends that can take over a finished temp
// file (a rename for the local backend) instead of copying it.
type fileSaver interface {
	SaveFile(ctx context.Context, h Handle, path string) error
}

// packFile is a pack being assembled in memory. Appending a blob under the
// packer's lock is a copy; hashing the pack and writing it out happen in
// an uploader, in parallel with the writers. A local repository gets the
// pack by direct I/O (writeDirect): through the page cache, writing and
// later flushing it cost the CPU more than compressing and encrypting it.
type packFile struct {
	t     BlobType
	buf   *packBuf
	size  int
	blobs []PackedBlob
	// Under the packer's lock: writers sealing into reserved space, and
	// whether the pack takes no more blobs.
	writers int
	isFull  bool
}

func newPackFile(t BlobType, buf *packBuf) *packFile {
	return &packFile{t: t, buf: buf}
}

// fits reports whether n more bytes can be reserved without moving the
// buffer (an empty pack grows to any size).
func (p *packFile) fits(n int) bool {
	return p.size == 0 || p.size+n <= cap(p.buf.mem)
}

// reserve adds an entry for a sealed blob of n bytes and returns the
// empty slice, of capacity n, to seal it into. The pack's writers are
// counted up; the caller counts them down once sealed.
func (p *packFile) reserve(h BlobHandle, n int, ulen uint32) []byte {
	p.buf.grow(n)
	off := len(p.buf.b)
	p.buf.b = p.buf.b[:off+n]
	p.blobs = append(p.blobs, PackedBlob{BlobHandle: h, Offset: uint32(p.size), Length: uint32(n), UncompressedLength: ulen})
	p.size += n
	p.writers++
	return p.buf.b[off : off : off+n]
}

// add appends a blob that is sealed already.
func (p *packFile) add(h BlobHandle, sealed []byte, ulen uint32) {
	p.buf.append(sealed)
	p.blobs = append(p.blobs, PackedBlob{BlobHandle: h, Offset: uint32(p.size), Length: uint32(len(sealed)), UncompressedLength: ulen})
	p.size += len(sealed)
}

// finish appends the header and returns the pack's ID.
func (p *packFile) finish(key *crypto.Key) (ID, int64) {
	p.buf.append(appendPackTrailer(nil, key, p.blobs))
	id := ID(sha256.Sum256(p.buf.b))
	for i := range p.blobs {
		p.blobs[i].Pack = id
	}
	return id, int64(len(p.buf.b))
}

// store hands the finished pack to the backend and gives its buffer back.
func (p *packFile) store(ctx context.Context, be Backend, h Handle, size int64) error {
	defer p.discard()
	data := p.buf.b[:size]
	if fs, ok := be.(fileSaver); ok {
		if td, ok := be.(tempDirer); ok {
			path, err := writeTemp(td.TempDir(), p.buf)
			if err != nil {
				return err
			}
			return fs.SaveFile(ctx, h, path)
		}
	}
	return be.Save(ctx, h, bytes.NewReader(data), size)
}

// discard gives the pack's buffer back; the pack is not stored.
func (p *packFile) discard() {
	if p.buf != nil {
		p.buf.put()
		p.buf = nil
	}
}
