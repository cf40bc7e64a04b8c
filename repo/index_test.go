package repo

import (
	"encoding/binary"
	"runtime"
	"testing"
)

func fakeBlobs(n, perPack int) []PackedBlob {
	out := make([]PackedBlob, n)
	var pack ID
	for i := range out {
		if i%perPack == 0 {
			binary.LittleEndian.PutUint64(pack[:], uint64(i)+1<<40)
		}
		var id ID
		binary.LittleEndian.PutUint64(id[8:], uint64(i)*2654435761)
		binary.LittleEndian.PutUint64(id[:], uint64(i))
		out[i] = PackedBlob{BlobHandle: BlobHandle{ID: id, Type: DataBlob}, Pack: pack,
			Offset: uint32(i%perPack) * 1000, Length: 1000, UncompressedLength: uint32(i % 3 * 500)}
	}
	return out
}

func TestIndexLookup(t *testing.T) {
	blobs := fakeBlobs(10000, 100)
	idx := NewIndex()
	idx.AddLoaded(blobs[:5000])
	idx.Sort()
	for _, b := range blobs[5000:] {
		idx.Add(b)
	}
	for _, b := range blobs {
		got := idx.Lookup(b.BlobHandle)
		if len(got) != 1 || got[0] != b {
			t.Fatalf("lookup %v: %+v", b.ID.Str(), got)
		}
	}
	idx.Merge()
	if idx.Len() != 10000 || len(idx.Packs()) != 100 {
		t.Fatalf("len %d packs %d", idx.Len(), len(idx.Packs()))
	}
	for _, b := range blobs {
		if !idx.Has(b.BlobHandle) {
			t.Fatal("lost after merge")
		}
		if idx.Has(BlobHandle{ID: b.ID, Type: TreeBlob}) {
			t.Fatal("type ignored")
		}
	}
	dup := blobs[7]
	dup.Pack = ID{9}
	idx.Add(dup)
	if got := idx.Lookup(dup.BlobHandle); len(got) != 2 {
		t.Fatalf("duplicate locations: %d", len(got))
	}
}

func TestIndexJSONRoundTrip(t *testing.T) {
	blobs := fakeBlobs(1200, 100)
	files := BuildIndexJSON(blobs, 500)
	if len(files) != 3 {
		t.Fatalf("%d index files, want 3 (500 blobs max, whole packs)", len(files))
	}
	var back []PackedBlob
	for _, f := range files {
		back = append(back, f.Blobs()...)
	}
	if len(back) != len(blobs) {
		t.Fatalf("%d blobs back", len(back))
	}
	for i := range back {
		if back[i] != blobs[i] {
			t.Fatalf("blob %d: %+v != %+v", i, back[i], blobs[i])
		}
	}
}

// BenchmarkIndexMemory reports the heap cost of the in-memory index per blob.
func BenchmarkIndexMemory(b *testing.B) {
	const n = 1_000_000
	blobs := fakeBlobs(n, 1000)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		idx := NewIndex()
		for i := 0; i < n; i += 10000 {
			idx.AddLoaded(blobs[i : i+10000])
		}
		idx.Sort()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/blob")
		runtime.KeepAlive(idx)
	}
}

// BenchmarkIndexHas is the dedup check a backup makes for every blob.
func BenchmarkIndexHas(b *testing.B) {
	blobs := fakeBlobs(200_000, 1000)
	idx := NewIndex()
	idx.AddLoaded(blobs)
	idx.Sort()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if !idx.Has(blobs[i%len(blobs)].BlobHandle) {
			b.Fatal("missing")
		}
		i += 7919
	}
}

// A blob added twice in this run (stored in two packs) is found at both
// places before and after Merge; others at theirs.
func TestIndexAddedTwice(t *testing.T) {
	idx := NewIndex()
	h := BlobHandle{ID: ID{1}, Type: DataBlob}
	other := BlobHandle{ID: ID{2}, Type: DataBlob}
	idx.Add(PackedBlob{BlobHandle: h, Pack: ID{0xa}, Offset: 1, Length: 40})
	idx.Add(PackedBlob{BlobHandle: other, Pack: ID{0xa}, Offset: 41, Length: 40})
	if got := idx.Lookup(h); len(got) != 1 || got[0].Offset != 1 {
		t.Fatalf("one location: %+v", got)
	}
	idx.Add(PackedBlob{BlobHandle: h, Pack: ID{0xb}, Offset: 7, Length: 40})
	for _, when := range []string{"before Merge", "after Merge"} {
		got := idx.Lookup(h)
		if len(got) != 2 || got[0].Pack == got[1].Pack {
			t.Fatalf("%s: %+v", when, got)
		}
		if o := idx.Lookup(other); len(o) != 1 || o[0].Offset != 41 {
			t.Fatalf("%s: other blob %+v", when, o)
		}
		n := 0
		idx.Each(func(PackedBlob) bool { n++; return true })
		if !idx.Has(h) || idx.Len() != 3 || n != 3 {
			t.Fatalf("%s: Has %v, Len %d, Each %d", when, idx.Has(h), idx.Len(), n)
		}
		idx.Merge()
	}
}
