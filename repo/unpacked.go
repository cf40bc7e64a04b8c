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
	decoder         *zstd.Decoder
	errDecoderSetup error
)

func coders() {
	encOnce.Do(func() {
		fastEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithLowerEncoderMem(true))
		maxEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		decoder, errDecoderSetup = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
	})
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
	if len(plain) == 0 {
		return nil, fmt.Errorf("empty file")
	}
	switch plain[0] {
	case '{', '[':
		return plain, nil
	case unpackedVersion2:
		out, err := decompress(nil, plain[1:])
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown encoding version %d", plain[0])
}
