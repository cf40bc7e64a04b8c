package fusefs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dropPages makes the kernel forget the cached pages of a file in the
// mount, so that the next reads reach the file system again.
func dropPages(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// TestMountConcurrentReads reads multi-blob files through the mount with
// concurrent readers at random offsets (crossing blob boundaries), while
// sequential readers stream them and read-ahead loads blobs in the
// background, with a cache far smaller than the files so that blob
// buffers are reused all the time; and walks a tree meanwhile.
func TestMountConcurrentReads(t *testing.T) {
	r, dir := newRepo(t)
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 20<<20+4321)
	rand.NewChaCha8([32]byte{9}).Read(random)
	var text bytes.Buffer
	for text.Len() < 5<<20 {
		fmt.Fprintf(&text, "%d: compressible line %x\n", text.Len(), rng.Uint32()%16)
	}
	files := map[string][]byte{"random.bin": random, "text.txt": text.Bytes()}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for d := range 60 {
		sub := filepath.Join(src, "tree", fmt.Sprintf("d%02d", d), "sub")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range 3 {
			if err := os.WriteFile(filepath.Join(filepath.Dir(sub), fmt.Sprintf("f%d", f)), []byte(sub), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	doBackup(t, r, src, time.Time{})
	m, _ := mountRepo(t, dir, Options{CacheSize: 3 << 20, ReadAhead: 3})
	latest := filepath.Join(m.Dir, "snapshots", "latest", src)

	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for name, data := range files {
		path := filepath.Join(latest, name)
		for g := range 4 {
			wg.Go(func() {
				f, err := os.Open(path)
				if err != nil {
					errs <- err
					return
				}
				defer f.Close()
				rng := rand.New(rand.NewPCG(uint64(g), 7))
				for i := range 30 {
					if i%5 == 0 {
						dropPages(f)
					}
					off := rng.Int64N(int64(len(data)))
					buf := make([]byte, 1+rng.IntN(3<<20))
					n, err := f.ReadAt(buf, off)
					if err != nil && !errors.Is(err, io.EOF) {
						errs <- fmt.Errorf("%s: ReadAt(%d, %d): %w", name, off, len(buf), err)
						return
					}
					if want := data[off:min(off+int64(len(buf)), int64(len(data)))]; !bytes.Equal(buf[:n], want) {
						errs <- fmt.Errorf("%s: ReadAt(%d, %d): %d bytes, wrong content", name, off, len(buf), n)
						return
					}
				}
			})
		}
		// Sequential readers, as cat would: the kernel's read-ahead sends
		// large reads that cross blob boundaries.
		for range 2 {
			wg.Go(func() {
				for range 2 {
					f, err := os.Open(path)
					if err != nil {
						errs <- err
						return
					}
					dropPages(f)
					got, err := io.ReadAll(f)
					f.Close()
					if err != nil || !bytes.Equal(got, data) {
						errs <- fmt.Errorf("%s: sequential read: %v (%d bytes, equal %v)", name, err, len(got), bytes.Equal(got, data))
						return
					}
				}
			})
		}
	}
	// A walk (with the trees loaded ahead) sees the tree as it is, with
	// directory link counts of 2 + subdirectories.
	wg.Go(func() {
		var want, got []string
		filepath.WalkDir(filepath.Join(src, "tree"), func(p string, d fs.DirEntry, err error) error {
			rel, _ := filepath.Rel(src, p)
			want = append(want, rel)
			return nil
		})
		err := filepath.WalkDir(filepath.Join(latest, "tree"), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(latest, p)
			got = append(got, rel)
			if d.IsDir() {
				var st syscall.Stat_t
				if err := syscall.Stat(p, &st); err != nil {
					return err
				}
				es, err := os.ReadDir(filepath.Join(src, rel))
				if err != nil {
					return err
				}
				subdirs := 0
				for _, e := range es {
					if e.IsDir() {
						subdirs++
					}
				}
				if st.Nlink != uint64(2+subdirs) {
					return fmt.Errorf("%s has %d links, want %d", rel, st.Nlink, 2+subdirs)
				}
			}
			return nil
		})
		if err != nil {
			errs <- fmt.Errorf("walk: %w", err)
		} else if !slices.Equal(got, want) {
			errs <- fmt.Errorf("walk found %d entries, want %d", len(got), len(want))
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
