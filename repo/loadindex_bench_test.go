package repo

import (
	"context"
	"encoding/binary"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkLoadIndex loads a local repository's index of 200k blobs (as
// four index files of 50k, 1000 blobs per pack, random IDs) the way an
// unchanged re-backup does: read, decrypt, decompress, decode, sort. It
// reports the peak of live heap objects during the load.
func BenchmarkLoadIndex(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	be, err := CreateLocal(dir)
	if err != nil {
		b.Fatal(err)
	}
	w, err := Init(ctx, be, "secret", 2, Options{KDF: testKDF})
	if err != nil {
		b.Fatal(err)
	}
	const n = 200_000
	blobs := make([]PackedBlob, n)
	var pack ID
	for i := range blobs {
		var seed [8]byte
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		if i%1000 == 0 {
			pack = Hash(append(seed[:], 'p'))
		}
		blobs[i] = PackedBlob{BlobHandle: BlobHandle{ID: Hash(seed[:]), Type: DataBlob}, Pack: pack,
			Offset: uint32(i%1000) * 1500, Length: 1500, UncompressedLength: 1700}
	}
	for _, ij := range BuildIndexJSON(blobs, indexMaxBlobs) {
		if _, err := w.SaveJSONUnpacked(ctx, IndexFile, ij); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	blobs = nil
	b.ReportAllocs()
	var peak uint64
	for b.Loop() {
		b.StopTimer()
		be, err := OpenLocal(dir)
		if err != nil {
			b.Fatal(err)
		}
		r, err := Open(ctx, be, "secret", Options{})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var stop atomic.Bool
		done := make(chan uint64)
		go func() {
			s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
			var max uint64
			for !stop.Load() {
				metrics.Read(s)
				max = maxU(max, s[0].Value.Uint64())
				time.Sleep(200 * time.Microsecond)
			}
			done <- max
		}()
		b.StartTimer()
		if err := r.LoadIndex(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		stop.Store(true)
		peak = maxU(peak, <-done)
		if !r.HasBlob(DataBlob, Hash([]byte{7, 0, 0, 0, 0, 0, 0, 0})) {
			b.Fatal("blob 7 not in the loaded index")
		}
		r.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
