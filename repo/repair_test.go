package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

func TestRebuildIndex(t *testing.T) {
	ctx := context.Background()
	r, dir := newTestRepo(t, 2)
	var blobs [][]byte
	for i := 0; i < 30; i++ {
		b := make([]byte, 70_000)
		rand.Read(b)
		blobs = append(blobs, b)
		r.SaveBlob(ctx, DataBlob, b, ID{})
	}
	r.SaveBlob(ctx, TreeBlob, []byte(`{"nodes":[]}`), ID{})
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Lose the index entirely, and damage one pack's header.
	idxFiles, _ := filepath.Glob(filepath.Join(dir, "index", "*"))
	for _, f := range idxFiles {
		os.Remove(f)
	}
	packs, _ := filepath.Glob(filepath.Join(dir, "data", "*", "*"))
	if len(packs) < 3 {
		t.Fatalf("only %d packs", len(packs))
	}
	damaged := packs[0]
	buf, _ := os.ReadFile(damaged)
	os.Chmod(damaged, 0o600)
	buf[len(buf)-10] ^= 1
	os.WriteFile(damaged, buf, 0o600)

	be, _ := OpenLocal(dir)
	r2, err := Open(ctx, be, "secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	res, err := r2.RebuildIndex(ctx, func(s string) { warnings = append(warnings, s) })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.DamagedPacks) != 1 || len(warnings) != 1 || res.Packs != len(packs)-1 {
		t.Fatalf("result %+v, warnings %v", res, warnings)
	}
	r3, _ := Open(ctx, be, "secret", Options{})
	if err := r3.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, b := range blobs {
		got, err := r3.LoadBlob(ctx, DataBlob, Hash(b), nil)
		if err == nil && bytes.Equal(got, b) {
			found++
		}
	}
	dataBlobs := 0
	r3.Index().Each(func(pb PackedBlob) bool {
		if pb.Type == DataBlob {
			dataBlobs++
		}
		return true
	})
	if found != dataBlobs || dataBlobs == 0 {
		t.Fatalf("%d blobs loadable, index has %d data blobs", found, dataBlobs)
	}
}
