package repo

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"

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

// packFile is a pack being written straight to a temp file, hashed as it
// grows, so a pack never sits in memory. Writes go through a buffer: blobs
// of small files are added one by one under the packer's lock, and a
// system call each would serialize the writers on it.
type packFile struct {
	t     BlobType
	f     *os.File
	w     *bufio.Writer
	sum   hash.Hash
	size  int
	blobs []PackedBlob
}

func newPackFile(be Backend, t BlobType) (*packFile, error) {
	dir := os.TempDir()
	if td, ok := be.(tempDirer); ok {
		dir = td.TempDir()
	}
	f, err := os.CreateTemp(dir, "pack-*")
	if err != nil {
		return nil, fmt.Errorf("create pack temp file: %w", diskFull(err))
	}
	return &packFile{t: t, f: f, w: bufio.NewWriterSize(f, 256<<10), sum: sha256.New()}, nil
}

func (p *packFile) add(h BlobHandle, sealed []byte, ulen uint32) error {
	if _, err := p.w.Write(sealed); err != nil {
		return fmt.Errorf("write pack temp file: %w", diskFull(err))
	}
	p.sum.Write(sealed)
	p.blobs = append(p.blobs, PackedBlob{BlobHandle: h, Offset: uint32(p.size), Length: uint32(len(sealed)), UncompressedLength: ulen})
	p.size += len(sealed)
	return nil
}

// finish writes the header and returns the pack's ID.
func (p *packFile) finish(key *crypto.Key) (ID, int64, error) {
	trailer := appendPackTrailer(nil, key, p.blobs)
	if _, err := p.w.Write(trailer); err != nil {
		return ID{}, 0, fmt.Errorf("write pack temp file: %w", diskFull(err))
	}
	if err := p.w.Flush(); err != nil {
		return ID{}, 0, fmt.Errorf("write pack temp file: %w", diskFull(err))
	}
	p.sum.Write(trailer)
	var id ID
	p.sum.Sum(id[:0])
	for i := range p.blobs {
		p.blobs[i].Pack = id
	}
	return id, int64(p.size + len(trailer)), nil
}

// store hands the finished pack to the backend and removes the temp file.
func (p *packFile) store(ctx context.Context, be Backend, h Handle, size int64) error {
	defer os.Remove(p.f.Name())
	if fs, ok := be.(fileSaver); ok {
		if err := p.f.Sync(); err != nil {
			p.f.Close()
			return fmt.Errorf("sync pack: %w", diskFull(err))
		}
		if err := p.f.Close(); err != nil {
			return err
		}
		return fs.SaveFile(ctx, h, p.f.Name())
	}
	defer p.f.Close()
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return be.Save(ctx, h, p.f, size)
}

func (p *packFile) discard() {
	p.f.Close()
	os.Remove(p.f.Name())
}
