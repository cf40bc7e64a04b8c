package repo

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/crypto"
)

// fuzzKey is a fixed master key, so corpus entries holding sealed headers
// stay meaningful from run to run.
func fuzzKey(t testing.TB) *crypto.Key {
	t.Helper()
	b64 := func(n int, c byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{c}, n)) }
	k := &crypto.Key{}
	js := fmt.Sprintf(`{"mac":{"k":%q,"r":%q},"encrypt":%q}`, b64(16, 1), b64(16, 2), b64(32, 3))
	if err := k.UnmarshalJSON([]byte(js)); err != nil {
		t.Fatal(err)
	}
	return k
}

// samplePackBlobs is a header as the packer writes it: plain and
// compressed entries of both types.
func samplePackBlobs() []PackedBlob {
	var bs []PackedBlob
	off := uint32(0)
	for i, l := range []uint32{100, 32, 5000, 77} {
		b := PackedBlob{BlobHandle: BlobHandle{ID: Hash([]byte{byte(i)}), Type: BlobType(i % 2)}, Offset: off, Length: l}
		if i >= 2 {
			b.Type = DataBlob
			b.UncompressedLength = l * 3
		}
		if i == 1 {
			b.Type = TreeBlob
		}
		bs = append(bs, b)
		off += l
	}
	return bs
}

// plainHeader encodes blobs the way appendPackTrailer does before sealing.
func plainHeader(t testing.TB, blobs []PackedBlob) []byte {
	key := fuzzKey(t)
	sealed := appendPackTrailer(nil, key, blobs)
	plain, err := key.Open(nil, sealed[:len(sealed)-4])
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

func dataEndOf(blobs []PackedBlob) int64 {
	var n int64
	for _, b := range blobs {
		n += int64(b.Length)
	}
	return n
}

// FuzzPackHeader feeds the decrypted header entries to the parser: no
// panic, no allocation beyond the input's size, and whatever parses must
// describe back-to-back blobs filling dataEnd that re-encode to the input.
func FuzzPackHeader(f *testing.F) {
	blobs := samplePackBlobs()
	plain := plainHeader(f, blobs)
	f.Add(plain, dataEndOf(blobs))
	f.Add(plain[:len(plain)-1], dataEndOf(blobs))
	f.Add(plain, dataEndOf(blobs)-1)
	f.Add([]byte{}, int64(0))
	f.Add([]byte{4, 0, 0, 0, 0}, int64(0))
	f.Add(bytes.Repeat([]byte{0, 0xff, 0xff, 0xff, 0xff}, 9), int64(1<<40))
	f.Fuzz(func(t *testing.T, plain []byte, dataEnd int64) {
		got, err := ParsePackHeaderEntries(ID{1}, plain, dataEnd)
		if err != nil {
			if !errors.Is(err, ErrCorruptPack) {
				t.Fatalf("error %v does not wrap ErrCorruptPack", err)
			}
			return
		}
		if cap(got) > len(plain)/headerEntrySize {
			t.Fatalf("%d entries allocated for %d header bytes", cap(got), len(plain))
		}
		var off int64
		for _, b := range got {
			if int64(b.Offset) != off || b.Length < crypto.Extension || b.Pack != (ID{1}) {
				t.Fatalf("blob %+v at offset %d", b, off)
			}
			off += int64(b.Length)
		}
		if off != dataEnd {
			t.Fatalf("blobs end at %d, header says %d", off, dataEnd)
		}
		if re := plainHeader(t, got); !bytes.Equal(re, plain) {
			t.Fatalf("re-encoded header differs:\n%x\n%x", re, plain)
		}
	})
}

// FuzzPackTail checks the header length field against the pack size: the
// parser never asks for more than the pack holds or MaxHeaderSize+4, and
// what it accepts lies inside tail.
func FuzzPackTail(f *testing.F) {
	key := fuzzKey(f)
	trailer := appendPackTrailer(nil, key, samplePackBlobs())
	size := dataEndOf(samplePackBlobs()) + int64(len(trailer))
	f.Add(trailer, size)
	f.Add(trailer[len(trailer)-10:], size)
	f.Add(trailer[len(trailer)-3:], size)
	f.Add(binary.LittleEndian.AppendUint32(nil, MaxHeaderSize+1), int64(1<<40))
	f.Add(binary.LittleEndian.AppendUint32(nil, 0xffffffff), int64(5))
	f.Add([]byte{}, int64(2))
	f.Fuzz(func(t *testing.T, tail []byte, packSize int64) {
		hlen, need, err := ParsePackTail(tail, packSize)
		switch {
		case err != nil:
			if !errors.Is(err, ErrCorruptPack) {
				t.Fatalf("error %v does not wrap ErrCorruptPack", err)
			}
		case need > 0:
			if need <= len(tail) || need > MaxHeaderSize+4 || int64(need) > packSize {
				t.Fatalf("asks for %d tail bytes (has %d, pack %d)", need, len(tail), packSize)
			}
		default:
			if hlen < crypto.Extension || hlen+4 > len(tail) || int64(len(tail)) > packSize {
				t.Fatalf("header length %d accepted for %d tail bytes, pack %d", hlen, len(tail), packSize)
			}
		}
	})
}

// FuzzPackHeaderEncrypted runs the whole path with a fixed key: a header
// is sealed, the tail is damaged by flip (XORed onto its end) and parsed.
// Undamaged, the result must equal the plaintext parser's; damaged, it
// must be an error (the MAC covers the header) or the same blobs.
func FuzzPackHeaderEncrypted(f *testing.F) {
	blobs := samplePackBlobs()
	plain := plainHeader(f, blobs)
	f.Add(plain, uint32(dataEndOf(blobs)), []byte{}, 0)
	f.Add(plain, uint32(dataEndOf(blobs)), []byte{1}, 0)
	f.Add(plain, uint32(dataEndOf(blobs)), []byte{0, 0, 0, 0, 1}, 0)
	f.Add(plain[:37], uint32(100), []byte{}, 0)
	f.Add([]byte{}, uint32(0), []byte{}, 0)
	f.Add(plain, uint32(dataEndOf(blobs)), []byte{}, 17)
	key := fuzzKey(f)
	f.Fuzz(func(t *testing.T, plain []byte, dataLen uint32, flip []byte, cut int) {
		dataLen %= 1 << 20 // the blob bytes are not read; keep the pack small
		trailer := key.Seal(nil, plain)
		trailer = binary.LittleEndian.AppendUint32(trailer, uint32(len(trailer)))
		packSize := int64(dataLen) + int64(len(trailer))
		tail := slices.Clone(trailer)
		for i, b := range flip {
			if i < len(tail) {
				tail[len(tail)-1-i] ^= b
			}
		}
		// cut > 0 drops bytes from the front of tail, as a short first read does.
		if cut = max(cut, 0) % (len(tail) + 1); cut > 0 {
			tail = tail[cut:]
		}
		got, need, err := ParsePackHeader(key, ID{2}, tail, packSize)
		if need > 0 {
			if err != nil || need <= len(tail) || int64(need) > packSize {
				t.Fatalf("need %d with %d tail bytes, pack %d, err %v", need, len(tail), packSize, err)
			}
			return
		}
		want, wantErr := ParsePackHeaderEntries(ID{2}, plain, int64(dataLen))
		damaged := !bytes.Equal(tail, trailer[len(trailer)-len(tail):])
		switch {
		case err != nil && !errors.Is(err, ErrCorruptPack):
			t.Fatalf("error %v does not wrap ErrCorruptPack", err)
		case err != nil && !damaged && wantErr == nil:
			t.Fatalf("intact header rejected: %v", err)
		case err == nil && (wantErr != nil || !slices.Equal(got, want)):
			t.Fatalf("accepted %v, plaintext parser says %v, %v (damaged %v)", got, want, wantErr, damaged)
		}
	})
}
