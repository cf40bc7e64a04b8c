package browse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
)

// Helpers of the browse tests (ls, find, dump, diff, stats) are prefixed
// "br" to stay clear of other tests in this package.

func brNewRepo(t testing.TB) *repo.Repository {
	t.Helper()
	be, err := repo.CreateLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, "browse-test", 2,
		repo.Options{KDF: crypto.KDFParams{N: 1 << 10, R: 8, P: 1}, Compression: repo.CompressionAuto})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func brBackup(t testing.TB, r *repo.Repository, src string, when time.Time) *snapshot.Snapshot {
	t.Helper()
	sn, _, err := archiver.Backup(context.Background(), r, []string{src}, archiver.ArchiveOptions{Time: when})
	if err != nil {
		t.Fatalf("backup %s: %v", src, err)
	}
	return sn
}

func brNode(t testing.TB, l *snapshot.TreeLoader, sn *snapshot.Snapshot, p string) *snapshot.Node {
	t.Helper()
	n, err := snapshot.FindNode(context.Background(), l, *sn.Tree, p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// brRandom writes size random bytes (seeded) to p and returns them.
func brRandom(t testing.TB, p string, size int, seed uint64) []byte {
	t.Helper()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1}).Read(data)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func TestFileReader(t *testing.T) {
	r := brNewRepo(t)
	src := t.TempDir()
	data := brRandom(t, filepath.Join(src, "big"), 17<<20+333, 1) // at least 3 blobs
	sn := brBackup(t, r, src, time.Time{})
	l := snapshot.NewTreeLoader(r, 16)
	node := brNode(t, l, sn, filepath.Join(src, "big"))
	if len(node.Content) < 3 {
		t.Fatalf("want a file of several blobs, got %d", len(node.Content))
	}
	// A cache smaller than the file: it must stay within its budget.
	cache := NewBlobCache(r, 3<<20)
	ctx := context.Background()
	fr, err := NewFileReader(ctx, r, cache, node)
	if err != nil {
		t.Fatal(err)
	}
	if fr.Size() != int64(len(data)) {
		t.Fatalf("Size = %d, want %d", fr.Size(), len(data))
	}
	for _, c := range []struct{ off, n int64 }{
		{0, 10}, {1, 1 << 20}, {int64(len(data)) - 100, 100}, {3 << 20, 3 << 20}, {12345, int64(len(data)) - 12345},
	} {
		buf := make([]byte, c.n)
		n, err := fr.ReadAt(buf, c.off)
		if err != nil || int64(n) != c.n {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", c.off, c.n, n, err)
		}
		if !bytes.Equal(buf, data[c.off:c.off+c.n]) {
			t.Fatalf("ReadAt(%d, %d): wrong bytes", c.off, c.n)
		}
		if cache.Size() > 3<<20 {
			t.Fatalf("cache holds %d bytes, budget %d", cache.Size(), 3<<20)
		}
	}
	// Reads past the end.
	buf := make([]byte, 200)
	if n, err := fr.ReadAt(buf, int64(len(data))-50); n != 50 || !errors.Is(err, io.EOF) || !bytes.Equal(buf[:50], data[len(data)-50:]) {
		t.Fatalf("read over the end: %d, %v", n, err)
	}
	if n, err := fr.ReadAt(buf, int64(len(data))); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read at the end: %d, %v", n, err)
	}
	var out bytes.Buffer
	if n, err := fr.WriteTo(&out); err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}

	// Concurrent readers share loads and all get the right bytes.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			off := int64(i) * 800_000
			b := make([]byte, 900_000)
			n, err := fr.ReadAt(b, off)
			if err != nil && !errors.Is(err, io.EOF) {
				errs <- err
				return
			}
			if !bytes.Equal(b[:n], data[off:off+int64(n)]) {
				errs <- errors.New("concurrent read: wrong bytes")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// A cancelled context ends a read that has to load.
	cold := NewBlobCache(r, 0)
	fr2, _ := NewFileReader(ctx, r, cold, node)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := fr2.ReadAtContext(cctx, buf, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("read with a cancelled context: %v", err)
	}
}

func TestFileReaderMissingBlob(t *testing.T) {
	r := brNewRepo(t)
	n := &snapshot.Node{Name: "ghost", Type: snapshot.NodeFile, Size: 10, Content: []repo.ID{repo.Hash([]byte("not stored"))}}
	if _, err := NewFileReader(context.Background(), r, NewBlobCache(r, 0), n); !errors.Is(err, repo.ErrBlobNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
	d := &snapshot.Node{Name: "d", Type: snapshot.NodeDir}
	if _, err := NewFileReader(context.Background(), r, NewBlobCache(r, 0), d); !errors.Is(err, ErrNotAFile) {
		t.Fatalf("directory: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
