package repo

import "sync"

// Most data on volumes is either compressible (text, logs, databases) or
// not at all (media, archives, encrypted files). Compressing a blob of the
// second kind costs a full zstd pass only to store the blob as it was, so
// in auto mode a few samples of a blob are compressed first and the blob
// is compressed only when they shrink.

const (
	// probeMin: smaller blobs are compressed outright, a probe would
	// cost nearly as much.
	probeMin = 16 << 10
	// probeMax is the most a probe compresses: 4 windows of 4 KiB.
	probeMax     = 16 << 10
	probeWindows = 4
)

// worthCompressing reports whether data looks compressible: up to
// probeWindows windows spread evenly over it, a quarter of it at most,
// compressed together must come to less than about 97% of their size.
// A blob whose compressible parts all fall between the windows is stored
// uncompressed; it costs space, never correctness.
func worthCompressing(data []byte) bool {
	if len(data) < probeMin {
		return true
	}
	n := min(probeMax, len(data)/4)
	w := n / probeWindows
	pb := probePool.Get().(*probeBufs)
	defer probePool.Put(pb)
	sample := pb.sample[:0]
	step := (len(data) - w) / (probeWindows - 1)
	for i := range probeWindows {
		sample = append(sample, data[i*step:i*step+w]...)
	}
	coders()
	c := fastEnc.EncodeAll(sample, pb.out[:0])
	return len(c)*32 < len(sample)*31
}

// probeBufs are a probe's sample and output, pooled apart from SaveBlob's
// chunk-sized buffers: a small buffer there would make a large blob
// allocate anew.
type probeBufs struct {
	sample [probeMax]byte
	out    [probeMax + probeMax/128 + 1024]byte // zstd's worst case
}

var probePool = sync.Pool{New: func() any { return new(probeBufs) }}

// compressBlob compresses a blob's data into dst as mode asks and reports
// whether the result is worth storing: false leaves the blob uncompressed.
func compressBlob(dst, data []byte, mode Compression) ([]byte, bool) {
	if mode == CompressionAuto && !worthCompressing(data) {
		return dst, false
	}
	c := compress(dst, data, mode)
	return c, len(c) < len(data)
}
