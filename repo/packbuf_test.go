package repo

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// writeTemp gives back exactly the pack's bytes whatever its length and
// alignment, by direct I/O where the filesystem has it (padded, then cut
// back) and by plain writes where it has not or the buffer does not allow.
func TestWriteTempLengthsAndFilesystems(t *testing.T) {
	dirs := []string{t.TempDir()} // the disk under the tests
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "cairn-packbuf-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(shm) })
			dirs = append(dirs, shm)
		}
	}
	slots := newPackSlots(1, 64<<10)
	defer slots.close()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dir := range dirs {
		for _, n := range []int{1, 4095, 4096, 4097, 64 << 10, 1<<20 + 3} {
			for _, offset := range []int{0, 1} { // 1: an unaligned buffer
				pb := slots.get()
				data := make([]byte, n+offset)
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
				pb.append(data)
				pb.b = pb.b[offset:] // what writeTemp sees starts unaligned
				path, err := writeTemp(dir, pb)
				if err != nil {
					t.Fatalf("%s, %d bytes at offset %d: %v", dir, n, offset, err)
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data[offset:]) {
					t.Fatalf("%s, %d bytes at offset %d: file holds %d bytes, not the pack", dir, n, offset, len(got))
				}
				os.Remove(path)
				pb.b = pb.mem[:0]
				pb.put()
			}
		}
	}
}

// A filesystem without direct I/O gets plain writes: the same bytes.
func TestWritePackPlain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pack")
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("pack"), 3000)
	if err := writePack(fd, data, false); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Fatalf("file holds %d bytes", len(got))
	}
}

// Many writers seal into shared packs while Flush runs now and then; tree
// blobs larger than a pack's room (huge directories) force packs out
// early and grow an empty one. Every blob must come back intact, from an
// index that lists each once, in packs that check clean.
func TestSaveBlobManyWritersSealInPlace(t *testing.T) {
	r, dir := newTestRepo(t, 2)
	r.opts.PackSize = 256 << 10
	ctx := context.Background()
	type saved struct {
		t    BlobType
		data []byte
	}
	var mu sync.Mutex
	var all []saved
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 120 {
				t, n := DataBlob, 1+rng.IntN(96<<10)
				if i%5 == 0 {
					t, n = TreeBlob, 1+rng.IntN(4<<10)
				}
				if i%40 == 39 {
					t, n = TreeBlob, 9<<20 // beyond a chunk: the pack cannot hold it
				}
				data := make([]byte, n)
				if i%3 == 0 || t == TreeBlob { // random: incompressible
					for j := range data {
						data[j] = byte(rng.Uint32())
					}
				} else {
					data[rng.IntN(n)] = byte(i) // compressible
				}
				if _, _, _, err := r.SaveBlob(ctx, t, data, ID{}); err != nil {
					panic(err)
				}
				mu.Lock()
				all = append(all, saved{t, data})
				mu.Unlock()
				if i%50 == 0 {
					if err := r.Flush(ctx); err != nil {
						panic(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r.Close()

	be, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Open(ctx, be, "secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		got, err := r2.LoadBlob(ctx, s.t, Hash(s.data), nil)
		if err != nil || !bytes.Equal(got, s.data) {
			t.Fatalf("%v blob of %d bytes: %v", s.t, len(s.data), err)
		}
	}
	var problems []string
	c := NewChecker(r2, func(sev Severity, msg string) { problems = append(problems, msg) })
	if err := c.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckPacks(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadPacks(ctx, c.DataPacks(), 2, ReadProgress{}); err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("check: %v", problems)
	}
}

// Full index files are saved while the backup goes on, each pack's blobs
// in one file, and Flush saves only the rest.
func TestIndexFilesSavedWhenFull(t *testing.T) {
	defer func(n int) { indexMaxBlobs = n }(indexMaxBlobs)
	indexMaxBlobs = 100
	r, dir := newTestRepo(t, 2)
	r.opts.PackSize = 8 << 10
	ctx := context.Background()
	var ids []ID
	rng := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		data := make([]byte, 1000) // random: about 8 a pack
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		id, _, _, err := r.SaveBlob(ctx, DataBlob, data, ID{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	countIndex := func() int {
		n := 0
		r.be.List(ctx, IndexFile, func(FileInfo) error { n++; return nil })
		return n
	}
	// The uploaders may still be at work: wait for most files.
	for i := 0; countIndex() < 8 && i < 500; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := countIndex(); n < 8 {
		t.Fatalf("%d index files before Flush, want the full ones (8 or more)", n)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	be, _ := OpenLocal(dir)
	r2, err := Open(ctx, be, "secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	packsSeen := map[ID]ID{} // pack -> index file
	err = r2.be.List(ctx, IndexFile, func(fi FileInfo) error {
		id, _ := ParseID(fi.Name)
		plain, err := r2.LoadUnpacked(ctx, IndexFile, id)
		if err != nil {
			return err
		}
		ij, err := DecodeIndex(plain)
		if err != nil {
			return err
		}
		n := 0
		for _, p := range ij.Packs {
			n += len(p.Blobs)
			if other, ok := packsSeen[p.ID]; ok {
				t.Errorf("pack %v in index files %v and %v", p.ID.Str(), other.Str(), id.Str())
			}
			packsSeen[p.ID] = id
		}
		if n > indexMaxBlobs {
			t.Errorf("index file %v lists %d blobs", id.Str(), n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if r2.Index().Len() != len(ids) {
		t.Fatalf("index has %d blobs, want %d", r2.Index().Len(), len(ids))
	}
}
