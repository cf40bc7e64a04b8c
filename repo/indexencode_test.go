package repo

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// The hand-written index encoder gives encoding/json's bytes.
func TestAppendIndexJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	randID := func() (id ID) {
		for i := range id {
			id[i] = byte(rng.Uint32())
		}
		return id
	}
	for _, packs := range []int{0, 1, 2, 7, 300} {
		var blobs []PackedBlob
		for range packs {
			pack := randID()
			for range 1 + rng.IntN(20) {
				b := PackedBlob{BlobHandle: BlobHandle{ID: randID(), Type: DataBlob}, Pack: pack,
					Offset: rng.Uint32(), Length: rng.Uint32()}
				if rng.IntN(2) == 0 {
					b.Type = TreeBlob
				}
				switch rng.IntN(3) {
				case 0:
					b.UncompressedLength = rng.Uint32()
				case 1:
					b.Offset, b.Length = 0, 0 // the edges of the numbers
				}
				blobs = append(blobs, b)
			}
		}
		var want []byte
		if ijs := BuildIndexJSON(blobs, len(blobs)+1); len(ijs) == 1 {
			var err error
			if want, err = json.Marshal(ijs[0]); err != nil {
				t.Fatal(err)
			}
		} else {
			want = []byte(`{"packs":[]}`)
		}
		if got := appendIndexJSON(nil, blobs); !bytes.Equal(got, want) {
			t.Fatalf("%d packs:\n got %.300s\nwant %.300s", packs, got, want)
		}
	}
}
