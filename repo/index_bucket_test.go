package repo

import (
	"math/rand/v2"
	"testing"
)

// Lookups through the bucket table find exactly what a scan finds, for
// sizes around the table's steps, duplicate entries, both blob types
// under one ID, and IDs crowded into one bucket or at its edges.
func TestIndexBucketsAgreeWithScan(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	randID := func() ID {
		var id ID
		for i := range id {
			id[i] = byte(r.UintN(256))
		}
		switch r.IntN(6) {
		case 0: // crowded at the bottom
			clear(id[:6])
		case 1: // crowded at the top
			for i := range 6 {
				id[i] = 0xff
			}
		}
		return id
	}
	for _, n := range []int{0, 1, 2, 3, 5, 64, 1000, 4097, 50000} {
		idx := NewIndex()
		want := map[BlobHandle]int{}
		var pbs []PackedBlob
		for i := range n {
			id := randID()
			if i > 0 && r.IntN(10) == 0 {
				id = pbs[r.IntN(len(pbs))].ID // stored twice, or as the other type
			}
			pb := PackedBlob{BlobHandle: BlobHandle{ID: id, Type: BlobType(1 + r.IntN(2))}, Pack: ID{byte(i % 7)}, Offset: uint32(i), Length: 10}
			pbs = append(pbs, pb)
			want[pb.BlobHandle]++
		}
		idx.AddLoaded(pbs)
		idx.Sort()
		for h, c := range want {
			if got := len(idx.Lookup(h)); got != c {
				t.Fatalf("n=%d: %v found %d times, want %d", n, h, got, c)
			}
		}
		for range 2000 {
			h := BlobHandle{ID: randID(), Type: BlobType(1 + r.IntN(2))}
			if got := idx.Has(h); got != (want[h] > 0) {
				t.Fatalf("n=%d: Has(%v) = %v", n, h, got)
			}
		}
	}
}
