package repo

import (
	"encoding/json"
	"testing"
)

// benchIndexFiles is a synthetic index of 200k blobs as cairn writes it:
// files of at most indexMaxBlobs entries, 1000 blobs per pack.
func benchIndexFiles(b *testing.B) (bufs [][]byte, size int64) {
	for _, ij := range BuildIndexJSON(fakeBlobs(200_000, 1000), indexMaxBlobs) {
		buf, err := json.Marshal(ij)
		if err != nil {
			b.Fatal(err)
		}
		bufs = append(bufs, buf)
		size += int64(len(buf))
	}
	return bufs, size
}

// BenchmarkIndexLoad decodes the index files' plaintext into an Index and
// sorts it: the CPU and allocations of LoadIndex after decryption. "json"
// is the encoding/json path it replaced.
func BenchmarkIndexLoad(b *testing.B) {
	bufs, size := benchIndexFiles(b)
	b.Run("scanner", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			idx := NewIndex()
			files := make([]*indexFile, len(bufs))
			for i, buf := range bufs {
				files[i] = &indexFile{}
				if err := decodeIndexFast(buf, files[i]); err != nil {
					b.Fatal(err)
				}
			}
			idx.addFiles(files)
			idx.Sort()
			if idx.Len() != 200_000 {
				b.Fatal(idx.Len())
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			idx := NewIndex()
			for _, buf := range bufs {
				ij, err := decodeIndexJSON(buf)
				if err != nil {
					b.Fatal(err)
				}
				idx.AddLoaded(ij.Blobs())
			}
			idx.Sort()
			if idx.Len() != 200_000 {
				b.Fatal(idx.Len())
			}
		}
	})
}
