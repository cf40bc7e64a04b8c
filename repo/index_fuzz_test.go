package repo

import (
	"bytes"
	"cmp"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

// FuzzDecodeIndex: no panic on any index plaintext; a decoded index
// re-encodes to an equal one, and regrouping its blobs by pack (as
// BuildIndexJSON does when rewriting indexes) keeps every location.
func FuzzDecodeIndex(f *testing.F) {
	for _, ij := range BuildIndexJSON(fakeBlobs(6, 3), 100) {
		ij.Supersedes = IDs{{1}}
		buf, err := json.Marshal(ij)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf)
		legacy, _ := json.Marshal(ij.Packs)
		f.Add(legacy)
	}
	f.Add([]byte(`{"packs":[{"id":"` + (ID{1}).String() + `","blobs":[{"id":"` + (ID{2}).String() + `","type":"tree","offset":0,"length":4294967295,"uncompressed_length":1}]}]}`))
	f.Add([]byte(`{"packs":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"packs":[{"blobs":[{"type":"x"}]}]}`))
	f.Fuzz(func(t *testing.T, buf []byte) {
		ij, err := DecodeIndex(buf)
		if err != nil {
			return
		}
		re, err := json.Marshal(ij)
		if err != nil {
			t.Fatalf("decoded index does not encode: %v", err)
		}
		ij2, err := DecodeIndex(re)
		if err != nil {
			t.Fatalf("re-encoded index does not decode: %v\n%s", err, re)
		}
		if !reflect.DeepEqual(normIndex(ij), normIndex(ij2)) {
			t.Fatalf("round trip changed the index:\n%+v\n%+v", ij, ij2)
		}
		blobs := ij.Blobs()
		var again []PackedBlob
		for _, part := range BuildIndexJSON(blobs, 1000) {
			again = append(again, part.Blobs()...)
		}
		byLoc := func(a, b PackedBlob) int {
			return cmp.Or(bytes.Compare(a.Pack[:], b.Pack[:]), cmp.Compare(a.Offset, b.Offset), bytes.Compare(a.ID[:], b.ID[:]),
				cmp.Compare(a.Type, b.Type), cmp.Compare(a.Length, b.Length), cmp.Compare(a.UncompressedLength, b.UncompressedLength))
		}
		slices.SortFunc(blobs, byLoc)
		slices.SortFunc(again, byLoc)
		if !slices.Equal(blobs, again) {
			t.Fatalf("regrouping changed the blobs:\n%v\n%v", blobs, again)
		}
	})
}

// normIndex makes nil and empty lists compare equal (omitempty drops them).
func normIndex(ij *IndexJSON) *IndexJSON {
	out := &IndexJSON{Supersedes: slices.Clip(ij.Supersedes)}
	if len(out.Supersedes) == 0 {
		out.Supersedes = nil
	}
	for _, p := range ij.Packs {
		np := PackJSON{ID: p.ID}
		if len(p.Blobs) > 0 {
			np.Blobs = p.Blobs
		}
		out.Packs = append(out.Packs, np)
	}
	return out
}
