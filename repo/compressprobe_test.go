package repo

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

func seeded(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = r.Read(b)
	return b
}

func logLines(n int) []byte {
	var b bytes.Buffer
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "2026-12-06T08:%02d:%02d level=info msg=\"request served\" path=/api/v1/items/%d status=200 bytes=%d\n", i/60%60, i%60, r.IntN(100000), r.IntN(5000))
	}
	return b.Bytes()[:n]
}

// Blobs whose samples do not shrink are stored as they are, without a
// full compression pass; everything else is compressed as before.
func TestCompressionProbe(t *testing.T) {
	half := seeded(1<<20, 3)
	copy(half[len(half)/2:], logLines(len(half)/2))
	zeroTail := seeded(64<<10, 4)
	clear(zeroTail[40<<10:])
	cases := []struct {
		name       string
		data       []byte
		mode       Compression
		compressed bool
	}{
		{"random 1 MiB", seeded(1<<20, 1), CompressionAuto, false},
		{"random 20 KiB", seeded(20<<10, 2), CompressionAuto, false},
		{"random below the probe", seeded(probeMin-1, 5), CompressionAuto, false},
		{"log lines 1 MiB", logLines(1 << 20), CompressionAuto, true},
		{"log lines 20 KiB", logLines(20 << 10), CompressionAuto, true},
		{"half random, half log", half, CompressionAuto, true},
		{"zeros in the last window", zeroTail, CompressionAuto, true},
		{"zeros 8 MiB", make([]byte, 8<<20), CompressionAuto, true},
		{"random with max", seeded(1<<20, 6), CompressionMax, false},
		{"log lines with max", logLines(1 << 20), CompressionMax, true},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTestRepo(t, 2)
			r.opts.Compression = tc.mode
			id, _, _, err := r.SaveBlob(ctx, DataBlob, tc.data, ID{})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			pbs := r.LookupBlob(DataBlob, id)
			if len(pbs) != 1 {
				t.Fatalf("index has %d entries for the blob", len(pbs))
			}
			if got := pbs[0].IsCompressed(); got != tc.compressed {
				t.Errorf("compressed = %v, want %v (stored %d of %d bytes)", got, tc.compressed, pbs[0].Length, len(tc.data))
			}
			back, err := r.LoadBlob(ctx, DataBlob, id, nil)
			if err != nil || !bytes.Equal(back, tc.data) {
				t.Fatalf("load: %v, equal %v", err, bytes.Equal(back, tc.data))
			}
		})
	}
}

func BenchmarkCompressBlobRandom(b *testing.B) {
	for _, n := range []int{32 << 10, 1 << 20} {
		data := seeded(n, 7)
		dst := make([]byte, 0, 2*n)
		b.Run(fmt.Sprint(n>>10, "KiB"), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				compressBlob(dst, data, CompressionAuto)
			}
		})
	}
}
