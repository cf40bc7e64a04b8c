package repo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
)

// countLoads counts the backend reads of pack files.
type countLoads struct {
	Backend
	packLoads atomic.Int32
}

func (b *countLoads) Load(ctx context.Context, h Handle, length int, offset int64) (io.ReadCloser, error) {
	if h.Type == PackFile {
		b.packLoads.Add(1)
	}
	return b.Backend.Load(ctx, h, length, offset)
}

// runTestBlobs saves plain and compressed blobs into one pack and returns
// their copies sorted by offset with their plaintexts.
func runTestBlobs(t *testing.T) (*Repository, string, []PackedBlob, map[ID][]byte) {
	t.Helper()
	ctx := context.Background()
	r, dir := newTestRepo(t, 2)
	plain := map[ID][]byte{}
	for i := range 6 {
		b := make([]byte, 20_000+i*1000)
		rand.NewChaCha8([32]byte{byte(i), 7}).Read(b)
		if i%3 == 1 {
			b = bytes.Repeat([]byte{byte('a' + i)}, 50_000) // compressed
		}
		id, _, _, err := r.SaveBlob(ctx, DataBlob, b, ID{})
		if err != nil {
			t.Fatal(err)
		}
		plain[id] = b
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var locs []PackedBlob
	for id := range plain {
		locs = append(locs, r.LookupBlob(DataBlob, id)[0])
	}
	slices.SortFunc(locs, func(a, b PackedBlob) int { return int(a.Offset) - int(b.Offset) })
	for _, pb := range locs[1:] {
		if pb.Pack != locs[0].Pack {
			t.Fatal("want the blobs in one pack")
		}
	}
	return r, dir, locs, plain
}

func loadRun(r *Repository, locs []PackedBlob) ([][]byte, []error, []int) {
	out, errs := make([][]byte, len(locs)), make([]error, len(locs))
	var order []int
	bufs := make([][]byte, len(locs))
	for i, pb := range locs {
		if i%2 == 0 {
			bufs[i] = make([]byte, 0, pb.LoadBufSize())
		}
	}
	r.LoadBlobRun(context.Background(), locs, bufs, func(i int, p []byte, err error) {
		order = append(order, i)
		out[i], errs[i] = p, err
	})
	return out, errs, order
}

// TestLoadBlobRun: one backend read for a run, with a gap too, each blob
// reported once and in order with its exact plaintext.
func TestLoadBlobRun(t *testing.T) {
	r, _, locs, plain := runTestBlobs(t)
	cl := &countLoads{Backend: r.be}
	r.be = cl
	for _, run := range [][]PackedBlob{locs, {locs[0], locs[2], locs[5]}} {
		cl.packLoads.Store(0)
		out, errs, order := loadRun(r, run)
		if !slices.Equal(order, []int{0, 1, 2, 3, 4, 5}[:len(run)]) {
			t.Fatalf("done called for %v, want each blob once in order", order)
		}
		for i, pb := range run {
			if errs[i] != nil || !bytes.Equal(out[i], plain[pb.ID]) {
				t.Fatalf("blob %d: %v (or wrong bytes)", i, errs[i])
			}
		}
		if n := cl.packLoads.Load(); n != 1 {
			t.Errorf("%d blobs took %d backend reads, want 1", len(run), n)
		}
	}
}

// TestLoadBlobRunDamagedBlob: a damaged blob fails alone; the blobs after
// it in the same read still load.
func TestLoadBlobRunDamagedBlob(t *testing.T) {
	r, dir, locs, plain := runTestBlobs(t)
	pack := locs[0].Pack.String()
	p := filepath.Join(dir, "data", pack[:2], pack)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	raw[locs[2].Offset+40] ^= 0xff
	os.Chmod(p, 0o600)
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, _ := loadRun(r, locs)
	for i, pb := range locs {
		if i == 2 {
			if !errors.Is(errs[i], ErrCorruptPack) {
				t.Errorf("damaged blob: %v, want ErrCorruptPack", errs[i])
			}
			continue
		}
		if errs[i] != nil || !bytes.Equal(out[i], plain[pb.ID]) {
			t.Errorf("blob %d next to a damaged one: %v (or wrong bytes)", i, errs[i])
		}
	}
}

// TestLoadBlobRunNotARun: blobs out of order are refused, each reported.
func TestLoadBlobRunNotARun(t *testing.T) {
	r, _, locs, _ := runTestBlobs(t)
	_, errs, order := loadRun(r, []PackedBlob{locs[3], locs[1]})
	if len(order) != 2 || !errors.Is(errs[0], ErrNotARun) || !errors.Is(errs[1], ErrNotARun) {
		t.Fatalf("out of order: %v, %v", order, errs)
	}
}
