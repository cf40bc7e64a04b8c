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
	run := func(b *testing.B, add func(*Index, []byte) error) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			idx := NewIndex()
			for _, buf := range bufs {
				if err := add(idx, buf); err != nil {
					b.Fatal(err)
				}
			}
			idx.Sort()
			if idx.Len() != 200_000 {
				b.Fatal(idx.Len())
			}
		}
	}
	b.Run("scanner", func(b *testing.B) {
		run(b, func(idx *Index, buf []byte) error {
			var f indexFile
			if err := decodeIndexFast(buf, &f); err != nil {
				return err
			}
			idx.addFile(&f)
			return nil
		})
	})
	b.Run("json", func(b *testing.B) {
		run(b, func(idx *Index, buf []byte) error {
			ij, err := decodeIndexJSON(buf)
			if err != nil {
				return err
			}
			idx.AddLoaded(ij.Blobs())
			return nil
		})
	})
}
