package repo

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Shared zstd coders: EncodeAll/DecodeAll are safe for concurrent use.
var (
	encOnce         sync.Once
	fastEnc, maxEnc *zstd.Encoder
	decoder         *zstd.Decoder // blobs
	unpackedDecoder *zstd.Decoder // index, snapshot and lock files
	errDecoderSetup error
)

func coders() {
	encOnce.Do(func() {
		fastEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithLowerEncoderMem(true))
		maxEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		decoder, errDecoderSetup = newDecoder(maxDecodedSize)
		if errDecoderSetup == nil {
			unpackedDecoder, errDecoderSetup = newDecoder(maxUnpackedSize)
		}
	})
}

// Bounds on what one compressed blob or unpacked file may expand to, so a
// zstd bomb (32 KiB of RLE blocks make 1 GiB) cannot take more. Tree blobs
// of huge directories reach hundreds of MiB; restic's largest unpacked
// files, indexes of 150,000 blobs, are ~40 MiB of JSON.
const (
	maxDecodedSize  = 1 << 30
	maxUnpackedSize = 256 << 20
)

// maxWindowSize is the reference zstd decoder's default window limit
// (2^27); restic and cairn write 8 MiB windows. A frame header's window
// size is a length field: it must not decide how much memory we take.
const maxWindowSize = 1 << 27

// newDecoder builds a zstd decoder whose output is capped at limit bytes.
// The library sizes its output buffer from the input's length, not from
// the frame's declared content size, so a lying header costs nothing.
func newDecoder(limit uint64) (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(limit), zstd.WithDecoderMaxWindow(min(limit, maxWindowSize)))
}

// Compression selects how blobs are compressed in version 2 repositories.
type Compression int

const (
	CompressionAuto Compression = iota // fastest zstd level
	CompressionOff
	CompressionMax
)

// ParseCompression parses the --compression flag.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "auto", "":
		return CompressionAuto, nil
	case "off":
		return CompressionOff, nil
	case "max":
		return CompressionMax, nil
	}
	return 0, fmt.Errorf("invalid compression %q: use auto, off or max", s)
}

func compress(dst, src []byte, mode Compression) []byte {
	coders()
	if mode == CompressionMax {
		return maxEnc.EncodeAll(src, dst)
	}
	return fastEnc.EncodeAll(src, dst)
}

func decompress(dst, src []byte) ([]byte, error) {
	coders()
	if errDecoderSetup != nil {
		return nil, errDecoderSetup
	}
	return decoder.DecodeAll(src, dst)
}

// unpackedVersion2 marks zstd-compressed JSON in version 2 unpacked files.
const unpackedVersion2 = 2

// encodeUnpacked prepares the plaintext of an index, snapshot or lock file.
func encodeUnpacked(version int, t FileType, plain []byte) []byte {
	if version < 2 || t == ConfigFile {
		return plain
	}
	out := make([]byte, 1, len(plain)/2+16)
	out[0] = unpackedVersion2
	return compress(out, plain, CompressionAuto)
}

// decodeUnpacked accepts both plain JSON (version 1, or '{'/'[' in version 2)
// and the compressed encoding.
func decodeUnpacked(plain []byte) ([]byte, error) {
	coders()
	if errDecoderSetup != nil {
		return nil, errDecoderSetup
	}
	return decodeUnpackedWith(unpackedDecoder, plain)
}

func decodeUnpackedWith(dec *zstd.Decoder, plain []byte) ([]byte, error) {
	if len(plain) == 0 {
		return nil, fmt.Errorf("empty file")
	}
	switch plain[0] {
	case '{', '[':
		return plain, nil
	case unpackedVersion2:
		out, err := dec.DecodeAll(plain[1:], nil)
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown encoding version %d", plain[0])
}
