package repo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// zstdFrame builds a frame by hand: a header declaring contentSize (and,
// unless single, a 2^wlog window) followed by RLE blocks of 128 KiB.
func zstdFrame(single bool, wlog byte, contentSize uint64, blocks int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0xFD2FB528)
	if single {
		b = append(b, 0xE0) // single segment, 8-byte content size
	} else {
		b = append(b, 0xC0, (wlog-10)<<3)
	}
	b = binary.LittleEndian.AppendUint64(b, contentSize)
	for i := range blocks {
		h := uint32(1<<1 | (128<<10)<<3) // RLE block of 128 KiB
		if i == blocks-1 {
			h |= 1
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 'x')
	}
	return b
}

// FuzzDecodeUnpacked: the version byte and zstd framing of index, snapshot
// and lock files. No panic, output bounded by the decoder's limit, and
// encodeUnpacked's output always decodes back.
func FuzzDecodeUnpacked(f *testing.F) {
	f.Add([]byte(`{"a":1}`))
	f.Add([]byte(`[1]`))
	f.Add([]byte{})
	f.Add([]byte{7})
	f.Add(encodeUnpacked(2, SnapshotFile, []byte(`{"time":"2024-01-01T00:00:00Z","tree":"00"}`)))
	f.Add(encodeUnpacked(2, IndexFile, bytes.Repeat([]byte(`{"id":"x"},`), 1000)))
	f.Add(append([]byte{2}, zstdFrame(true, 0, 900<<20, 1)...))
	f.Add(append([]byte{2}, zstdFrame(false, 27, 1<<40, 2)...))
	f.Add(append([]byte{2}, zstdFrame(false, 30, 100, 1)...))
	// The decoder the fuzzer uses is capped at 4 MiB so a bomb it finds
	// is cut short quickly; the property is the same at 256 MiB.
	const limit = 4 << 20
	dec, err := newDecoder(limit)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := decodeUnpackedWith(dec, in)
		if err != nil {
			return
		}
		if len(in) > 0 && in[0] == unpackedVersion2 && len(out) > limit {
			t.Fatalf("%d input bytes decoded to %d, above the %d limit", len(in), len(out), limit)
		}
		if len(in) > 0 && (in[0] == '{' || in[0] == '[') {
			if !bytes.Equal(out, in) {
				t.Fatal("plain JSON changed")
			}
			enc := encodeUnpacked(2, IndexFile, in)
			back, err := decodeUnpackedWith(dec, enc)
			if err != nil || !bytes.Equal(back, in) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

// A zstd bomb and a frame header lying about its size cost memory in
// proportion to the input and to the limit, never to the declared size.
func TestDecodeUnpackedBounded(t *testing.T) {
	const limit = 1 << 20
	dec, err := newDecoder(limit)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		in   []byte
	}{
		{"bomb: 4 KiB of RLE blocks make 128 MiB", zstdFrame(false, 20, 128<<20, 1024)},
		{"single segment claiming 900 MiB", zstdFrame(true, 0, 900<<20, 1)},
		{"2^27 window claiming 1 TiB", zstdFrame(false, 27, 1<<40, 1)},
		{"2^31 window", zstdFrame(false, 31, 100, 1)},
	}
	for _, c := range cases {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		out, err := decodeUnpackedWith(dec, append([]byte{2}, c.in...))
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: decoded %d bytes, want an error", c.name, len(out))
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*limit {
			t.Errorf("%s: allocated %d MiB", c.name, alloc>>20)
		}
	}
	// The real decoder refuses a frame declaring more than 256 MiB up front.
	in := append([]byte{2}, zstdFrame(false, 20, maxUnpackedSize+1, 1)...)
	if _, err := decodeUnpacked(in); !errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		t.Fatalf("frame of %d MiB: %v, want ErrDecoderSizeExceeded", (maxUnpackedSize+1)>>20, err)
	}
}
