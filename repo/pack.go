package repo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

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
	hlen, need, err := ParsePackTail(tail, packSize)
	if err != nil {
		return nil, 0, fmt.Errorf("pack %v: %w", pack.Str(), err)
	}
	if need > 0 {
		return nil, need, nil
	}
	plain, err := key.Open(nil, tail[len(tail)-4-hlen:len(tail)-4])
	if err != nil {
		return nil, 0, fmt.Errorf("pack %v: %w: header: %w", pack.Str(), ErrCorruptPack, err)
	}
	blobs, err := ParsePackHeaderEntries(pack, plain, packSize-4-int64(hlen))
	if err != nil {
		return nil, 0, fmt.Errorf("pack %v: %w", pack.Str(), err)
	}
	return blobs, 0, nil
}

// ParsePackTail reads the header length stored in the last 4 bytes of a
// pack, of which tail holds the last len(tail) bytes, and checks it against
// packSize. It returns the length of the encrypted header, or, when tail
// does not hold all of it and its length field, how many tail bytes are
// needed (never more than MaxHeaderSize+4 nor packSize).
func ParsePackTail(tail []byte, packSize int64) (hlen, need int, err error) {
	if len(tail) < 4 {
		if packSize < 4 {
			return 0, 0, fmt.Errorf("%w: %d bytes are too short for a pack", ErrCorruptPack, packSize)
		}
		return 0, 4, nil
	}
	if int64(len(tail)) > packSize {
		return 0, 0, fmt.Errorf("%w: %d tail bytes of a pack of %d bytes", ErrCorruptPack, len(tail), packSize)
	}
	l := int64(binary.LittleEndian.Uint32(tail[len(tail)-4:]))
	if l < crypto.Extension || l > MaxHeaderSize || l+4 > packSize {
		return 0, 0, fmt.Errorf("%w: header length %d invalid for pack size %d", ErrCorruptPack, l, packSize)
	}
	if int64(len(tail)) < l+4 {
		return 0, int(l + 4), nil
	}
	return int(l), 0, nil
}

// ParsePackHeaderEntries decodes the decrypted header of a pack whose blobs
// take the first dataEnd bytes. The blobs must fill exactly that space,
// back to back, in header order.
func ParsePackHeaderEntries(pack ID, plain []byte, dataEnd int64) ([]PackedBlob, error) {
	// Sized by the input: each entry takes at least headerEntrySize bytes.
	blobs := make([]PackedBlob, 0, len(plain)/headerEntrySize)
	var off int64
	for len(plain) > 0 {
		t := plain[0]
		size := headerEntrySize
		if t&2 != 0 {
			size = headerEntrySizeCompressed
		}
		if t > 3 || len(plain) < size {
			return nil, fmt.Errorf("%w: bad header entry %d (type %d, %d bytes left)", ErrCorruptPack, len(blobs), t, len(plain))
		}
		if off > math.MaxUint32 {
			return nil, fmt.Errorf("%w: blob %d starts beyond 4 GiB", ErrCorruptPack, len(blobs))
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
		if t&2 != 0 && b.UncompressedLength == 0 {
			// Writers set the flag only for a length > 0; read as it is,
			// the entry would pass zstd bytes off as the plaintext.
			return nil, fmt.Errorf("%w: blob %v marked compressed with uncompressed length 0", ErrCorruptPack, b.ID.Str())
		}
		if b.Length < crypto.Extension {
			return nil, fmt.Errorf("%w: blob %v too short", ErrCorruptPack, b.ID.Str())
		}
		off += int64(b.Length)
		if off > dataEnd {
			return nil, fmt.Errorf("%w: blobs overrun the header", ErrCorruptPack)
		}
		blobs = append(blobs, b)
		plain = plain[size:]
	}
	if off != dataEnd {
		return nil, fmt.Errorf("%w: %d bytes of blobs, header says %d", ErrCorruptPack, dataEnd, off)
	}
	return blobs, nil
}
