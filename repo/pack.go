package repo

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cairn-backup/cairn/crypto"
)

// Header entry sizes: type byte, encrypted length, [plaintext length], hash.
const (
	headerEntrySize           = 1 + 4 + IDSize
	headerEntrySizeCompressed = 1 + 4 + 4 + IDSize
	// MaxHeaderSize bounds what ParsePackHeader accepts, so a corrupt length
	// field cannot make us allocate gigabytes.
	MaxHeaderSize = 16 << 20
)

// ErrCorruptPack marks a pack whose structure or authentication is broken.
var ErrCorruptPack = errors.New("corrupt pack")

// PackWriter accumulates encrypted blobs of one type in memory and appends
// the encrypted header when finished.
type PackWriter struct {
	Type  BlobType
	buf   []byte
	blobs []PackedBlob // Pack field unset until Finish
}

// NewPackWriter starts a pack with room for capacity bytes.
func NewPackWriter(t BlobType, capacity int) *PackWriter {
	return &PackWriter{Type: t, buf: make([]byte, 0, capacity)}
}

// Add appends one sealed blob. ulen is the plaintext length when the blob
// was compressed, else 0.
func (p *PackWriter) Add(h BlobHandle, sealed []byte, ulen uint32) {
	p.blobs = append(p.blobs, PackedBlob{BlobHandle: h, Offset: uint32(len(p.buf)), Length: uint32(len(sealed)), UncompressedLength: ulen})
	p.buf = append(p.buf, sealed...)
}

// Size is the number of blob bytes written so far.
func (p *PackWriter) Size() int { return len(p.buf) }

// Count is the number of blobs in the pack.
func (p *PackWriter) Count() int { return len(p.blobs) }

// Finish appends the header and returns the pack bytes, its ID and the
// blob locations.
func (p *PackWriter) Finish(key *crypto.Key) ([]byte, ID, []PackedBlob) {
	p.buf = appendPackTrailer(p.buf, key, p.blobs)
	id := Hash(p.buf)
	for i := range p.blobs {
		p.blobs[i].Pack = id
	}
	return p.buf, id, p.blobs
}

// appendPackTrailer appends the encrypted header describing blobs and its
// length: what follows the blobs in every pack.
func appendPackTrailer(dst []byte, key *crypto.Key, blobs []PackedBlob) []byte {
	hdr := make([]byte, 0, len(blobs)*headerEntrySizeCompressed)
	for _, b := range blobs {
		t := byte(0)
		if b.Type == TreeBlob {
			t = 1
		}
		if b.IsCompressed() {
			t |= 2
		}
		hdr = append(hdr, t)
		hdr = binary.LittleEndian.AppendUint32(hdr, b.Length)
		if b.IsCompressed() {
			hdr = binary.LittleEndian.AppendUint32(hdr, b.UncompressedLength)
		}
		hdr = append(hdr, b.ID[:]...)
	}
	start := len(dst)
	dst = key.Seal(dst, hdr)
	return binary.LittleEndian.AppendUint32(dst, uint32(len(dst)-start))
}

// PackHeaderReadSize is how much of a pack's tail to read to likely get the
// whole header in one request.
func PackHeaderReadSize(packSize int64) int64 {
	const guess = 64 << 10
	return min(packSize, guess)
}

// ParsePackHeader decodes the header found at the end of tail, which holds
// the last len(tail) bytes of a pack of packSize bytes. If tail is too short
// it returns the number of tail bytes needed.
func ParsePackHeader(key *crypto.Key, pack ID, tail []byte, packSize int64) ([]PackedBlob, int, error) {
	if len(tail) < 4 {
		return nil, 4, nil
	}
	hlen := int64(binary.LittleEndian.Uint32(tail[len(tail)-4:]))
	if hlen < crypto.Extension || hlen > MaxHeaderSize || hlen+4 > packSize {
		return nil, 0, fmt.Errorf("pack %v: %w: header length %d invalid for pack size %d", pack.Str(), ErrCorruptPack, hlen, packSize)
	}
	if int64(len(tail)) < hlen+4 {
		return nil, int(hlen + 4), nil
	}
	plain, err := key.Open(nil, tail[int64(len(tail))-4-hlen:len(tail)-4])
	if err != nil {
		return nil, 0, fmt.Errorf("pack %v: %w: header: %w", pack.Str(), ErrCorruptPack, err)
	}
	dataEnd := packSize - 4 - hlen
	var blobs []PackedBlob
	var off int64
	for len(plain) > 0 {
		t := plain[0]
		size := headerEntrySize
		if t&2 != 0 {
			size = headerEntrySizeCompressed
		}
		if t > 3 || len(plain) < size {
			return nil, 0, fmt.Errorf("pack %v: %w: bad header entry (type %d)", pack.Str(), ErrCorruptPack, t)
		}
		b := PackedBlob{Pack: pack, Offset: uint32(off)}
		b.Type = DataBlob
		if t&1 != 0 {
			b.Type = TreeBlob
		}
		b.Length = binary.LittleEndian.Uint32(plain[1:])
		rest := plain[5:size]
		if t&2 != 0 {
			b.UncompressedLength = binary.LittleEndian.Uint32(rest)
			rest = rest[4:]
		}
		copy(b.ID[:], rest)
		if b.Length < crypto.Extension {
			return nil, 0, fmt.Errorf("pack %v: %w: blob %v too short", pack.Str(), ErrCorruptPack, b.ID.Str())
		}
		off += int64(b.Length)
		if off > dataEnd {
			return nil, 0, fmt.Errorf("pack %v: %w: blobs overrun the header", pack.Str(), ErrCorruptPack)
		}
		blobs = append(blobs, b)
		plain = plain[size:]
	}
	if off != dataEnd {
		return nil, 0, fmt.Errorf("pack %v: %w: %d bytes of blobs, header says %d", pack.Str(), ErrCorruptPack, dataEnd, off)
	}
	return blobs, 0, nil
}
