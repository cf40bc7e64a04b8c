package browse

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// BenchmarkFileReader streams a 64 MiB file through a fresh BlobCache, as
// dump does (WriteTo) and as a FUSE read does (128 KiB spans): random bytes
// (stored uncompressed, decrypted in place) and text (stored compressed).
// The repository's packs are in the page cache after the first run.
// cpu-ns/op (user + system time of the process) varies less than ns/op on
// a busy machine. With BROWSE_BENCH_DIR set, the repositories are kept
// there and reused, so that two builds compare on the same blobs (a new
// repository has a new chunker polynomial, hence other blob sizes).
func BenchmarkFileReader(b *testing.B) {
	const size = 64 << 20
	for _, kind := range []string{"random", "text"} {
		r, node := benchFile(b, kind, size)
		ctx := context.Background()
		b.Run(kind+"/WriteTo", func(b *testing.B) {
			b.SetBytes(int64(node.Size))
			defer reportCPU(b)()
			for b.Loop() {
				fr, err := NewFileReader(ctx, r, NewBlobCache(r, 0), node)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := fr.WriteTo(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(kind+"/Span128K", func(b *testing.B) {
			b.SetBytes(int64(node.Size))
			buf := make([]byte, 128<<10)
			defer reportCPU(b)()
			for b.Loop() {
				fr, err := NewFileReader(ctx, r, NewBlobCache(r, 0), node)
				if err != nil {
					b.Fatal(err)
				}
				fr.ReadAhead = 8 // as fusefs sets it
				for off := int64(0); off < fr.Size(); off += int64(len(buf)) {
					s, err := fr.Span(ctx, off, len(buf))
					if err != nil {
						b.Fatal(err)
					}
					s.CopyTo(buf)
					s.Release()
				}
			}
		})
	}
}

// reportCPU reports the process's CPU time per iteration when the
// returned function is called.
func reportCPU(b *testing.B) func() {
	start := cpuTime(b)
	return func() { b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op") }
}

func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// benchFile returns a repository holding one file of size bytes of kind
// "random" or "text", and the file's node.
func benchFile(b *testing.B, kind string, size int) (*repo.Repository, *snapshot.Node) {
	b.Helper()
	ctx := context.Background()
	dir := os.Getenv("BROWSE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	dir = filepath.Join(dir, kind)
	src := filepath.Join(dir, "src")
	p := filepath.Join(src, kind)
	if be, err := repo.OpenLocal(filepath.Join(dir, "repo")); err == nil {
		if r, err := repo.Open(ctx, be, "browse-test", repo.Options{}); err == nil {
			if err := r.LoadIndex(ctx); err != nil {
				b.Fatal(err)
			}
			sn, err := snapshot.FindSnapshot(ctx, r, "latest", snapshot.Filter{})
			if err != nil {
				b.Fatal(err)
			}
			return r, brNode(b, snapshot.NewTreeLoader(r, 16), sn, p)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	if kind == "random" {
		brRandom(b, p, size, 7)
	} else {
		var text bytes.Buffer
		rng := rand.New(rand.NewPCG(7, 7))
		for text.Len() < size {
			fmt.Fprintf(&text, "line %d of a compressible file: %x\n", text.Len(), rng.Uint32())
		}
		if err := os.WriteFile(p, text.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	be, err := repo.CreateLocal(filepath.Join(dir, "repo"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := repo.Init(ctx, be, "browse-test", 2,
		repo.Options{KDF: crypto.KDFParams{N: 1 << 10, R: 8, P: 1}, Compression: repo.CompressionAuto})
	if err != nil {
		b.Fatal(err)
	}
	sn := brBackup(b, r, src, time.Time{})
	return r, brNode(b, snapshot.NewTreeLoader(r, 16), sn, p)
}
