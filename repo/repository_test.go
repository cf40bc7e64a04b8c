package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/cairn-backup/cairn/crypto"
)

var testKDF = crypto.KDFParams{N: 1 << 10, R: 8, P: 1}

func newTestRepo(t *testing.T, version int) (*Repository, string) {
	t.Helper()
	dir := t.TempDir()
	be, err := CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Init(context.Background(), be, "secret", version, Options{KDF: testKDF, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

func TestBlobRoundTrip(t *testing.T) {
	for _, version := range []int{1, 2} {
		ctx := context.Background()
		r, dir := newTestRepo(t, version)
		var blobs [][]byte
		for i := 0; i < 40; i++ {
			b := make([]byte, 100_000)
			if i%2 == 0 {
				rand.Read(b)
			} else {
				b = bytes.Repeat([]byte{byte(i)}, 100_000) // compressible
			}
			blobs = append(blobs, b)
			if _, known, _, err := r.SaveBlob(ctx, DataBlob, b, ID{}); err != nil || known {
				t.Fatal(err, known)
			}
		}
		if _, known, _, _ := r.SaveBlob(ctx, DataBlob, blobs[0], ID{}); !known {
			t.Fatal("duplicate blob not detected")
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		be, _ := OpenLocal(dir)
		r2, err := Open(ctx, be, "secret", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r2.Config().Version != version {
			t.Fatalf("version %d", r2.Config().Version)
		}
		if err := r2.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		if r2.Index().Len() != 40 {
			t.Fatalf("index has %d entries", r2.Index().Len())
		}
		for _, b := range blobs {
			got, err := r2.LoadBlob(ctx, DataBlob, Hash(b), nil)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("load blob: %v", err)
			}
		}
		if _, err := Open(ctx, be, "wrong", Options{}); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("wrong password: %v", err)
		}
	}
}
