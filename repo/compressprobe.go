package repo

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
	sample := getBuf(n)
	defer bufPool.Put(sample)
	step := (len(data) - w) / (probeWindows - 1)
	for i := range probeWindows {
		*sample = append(*sample, data[i*step:i*step+w]...)
	}
	out := getBuf(n + n/128 + 1024)
	defer bufPool.Put(out)
	coders()
	c := fastEnc.EncodeAll(*sample, *out)
	*out = c[:0]
	return len(c)*32 < len(*sample)*31
}

// compressBlob compresses a blob's data into dst as mode asks and reports
// whether the result is worth storing: false leaves the blob uncompressed.
func compressBlob(dst, data []byte, mode Compression) ([]byte, bool) {
	if mode == CompressionAuto && !worthCompressing(data) {
		return dst, false
	}
	c := compress(dst, data, mode)
	return c, len(c) < len(data)
}
