package repo

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// sameArray reports whether two slices end at the same element, i.e. share
// their backing array's tail.
func sameArray(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && &a[:cap(a)][cap(a)-1] == &b[:cap(b)][cap(b)-1]
}

// saveTestBlobs stores a random (stored uncompressed) and a compressible
// blob in a version 2 repository and returns them.
func saveTestBlobs(t *testing.T) (r *Repository, dir string, random, text []byte) {
	t.Helper()
	ctx := context.Background()
	r, dir = newTestRepo(t, 2)
	random = make([]byte, 300_000)
	rand.NewChaCha8([32]byte{1}).Read(random)
	text = bytes.Repeat([]byte("a line of a compressible blob\n"), 10_000)
	for _, b := range [][]byte{random, text} {
		if _, _, _, err := r.SaveBlob(ctx, DataBlob, b, ID{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if r.LookupBlob(DataBlob, Hash(random))[0].IsCompressed() || !r.LookupBlob(DataBlob, Hash(text))[0].IsCompressed() {
		t.Fatal("want the random blob stored plain and the text compressed")
	}
	return r, dir, random, text
}

// TestLoadBlobInto: the plaintext lands in the caller's buffer when it is
// LoadBufSize large, and is right with a small or no buffer too.
func TestLoadBlobInto(t *testing.T) {
	r, _, random, text := saveTestBlobs(t)
	ctx := context.Background()
	for _, want := range [][]byte{random, text} {
		id := Hash(want)
		pb := r.LookupBlob(DataBlob, id)[0]
		buf := make([]byte, 7, pb.LoadBufSize())
		got, err := r.LoadBlobInto(ctx, DataBlob, id, buf)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("compressed=%v: load into a buffer: %v", pb.IsCompressed(), err)
		}
		if !sameArray(got, buf) {
			t.Errorf("compressed=%v: the plaintext is not in the caller's buffer", pb.IsCompressed())
		}
		for _, small := range [][]byte{nil, make([]byte, 0, 10)} {
			got, err := r.LoadBlobInto(ctx, DataBlob, id, small)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("compressed=%v: load into cap %d: %v", pb.IsCompressed(), cap(small), err)
			}
		}
	}
	if _, err := r.LoadBlobInto(ctx, DataBlob, Hash([]byte("unknown")), nil); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("unknown blob: %v", err)
	}
}

// TestLoadBlobIntoTriesEveryCopy: with two copies of a pack in the index,
// one of them damaged, the blob still loads, whichever copy is damaged; a
// blob whose only copy is damaged fails with ErrCorruptPack.
func TestLoadBlobIntoTriesEveryCopy(t *testing.T) {
	for _, damageCopy := range []bool{false, true} {
		r, dir, random, text := saveTestBlobs(t)
		ctx := context.Background()
		for _, want := range [][]byte{random, text} {
			id := Hash(want)
			pb := r.LookupBlob(DataBlob, id)[0]
			packPath := func(pack ID) string {
				return filepath.Join(dir, "data", pack.String()[:2], pack.String())
			}
			raw, err := os.ReadFile(packPath(pb.Pack))
			if err != nil {
				t.Fatal(err)
			}
			other := pb
			other.Pack = Hash(append([]byte("copy of "), pb.Pack[:]...))
			if err := os.MkdirAll(filepath.Dir(packPath(other.Pack)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(packPath(other.Pack), raw, 0o644); err != nil {
				t.Fatal(err)
			}
			damaged := pb.Pack
			if damageCopy {
				damaged = other.Pack
			}
			bad := bytes.Clone(raw)
			bad[pb.Offset+20] ^= 0xff
			if err := os.WriteFile(packPath(damaged), bad, 0o644); err != nil {
				t.Fatal(err)
			}
			if damaged == pb.Pack {
				// Before the good copy is known, the only copy is damaged.
				if _, err := r.LoadBlobInto(ctx, DataBlob, id, nil); !errors.Is(err, ErrCorruptPack) {
					t.Fatalf("only copy damaged: %v", err)
				}
			}
			r.Index().Add(other)
			if n := len(r.LookupBlob(DataBlob, id)); n != 2 {
				t.Fatalf("index lists %d copies, want 2", n)
			}
			got, err := r.LoadBlobInto(ctx, DataBlob, id, make([]byte, 0, pb.LoadBufSize()))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("damaged copy %v, compressed=%v: %v", damaged.Str(), pb.IsCompressed(), err)
			}
		}
	}
}
