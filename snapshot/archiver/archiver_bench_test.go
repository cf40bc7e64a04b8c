package archiver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/repo"

	"github.com/cairn-backup/cairn/snapshot"
)

// BenchmarkBackup measures a first backup of 256 MiB of random data in 4
// files plus 2000 small files (data in the page cache; repository on the
// same disk). It also reports the process's peak RSS.
func BenchmarkBackup(b *testing.B) {
	src := b.TempDir()
	var total int64
	for i := range 4 {
		f, err := os.Create(filepath.Join(src, fmt.Sprintf("big-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.NewChaCha8([32]byte{byte(i), 1})
		buf := make([]byte, 1<<20)
		for range 64 {
			_, _ = rng.Read(buf)
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		total += 64 << 20
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		data := arRandom(rng.IntN(16<<10), uint64(i)+100)
		arWrite(b, filepath.Join(src, fmt.Sprintf("d%02d/s%04d", i%40, i)), data)
		total += int64(len(data))
	}
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		r, dir := arNewRepo(b)
		b.StartTimer()
		if _, n, err := Backup(context.Background(), r, []string{src}, ArchiveOptions{Progress: &snapshot.Progress{}}); err != nil || n != 0 {
			b.Fatal(err, n)
		}
		b.StopTimer()
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			var kb float64
			if _, err := fmt.Sscanf(l, "VmHWM: %f kB", &kb); err == nil {
				b.ReportMetric(kb/1024, "peakRSS-MiB")
			}
		}
	}
}

// benchSmallTree is a tree of many small files of distinct random content:
// $ARCH_BENCH_SMALL when set (a directory to back up), else 20,000 files of
// 1-2 KiB, 100 a directory, in the benchmark's temporary directory.
func benchSmallTree(b *testing.B) string {
	if d := os.Getenv("ARCH_BENCH_SMALL"); d != "" {
		return d
	}
	dir := b.TempDir()
	rng := rand.NewChaCha8([32]byte{7})
	for i := range 20000 {
		data := make([]byte, 1024+i%1024)
		_, _ = rng.Read(data)
		arWrite(b, filepath.Join(dir, fmt.Sprintf("d%03d/f%05d", i/100, i)), data)
	}
	return dir
}

// BenchmarkBackupSmallFirst is a first backup of many small files.
func BenchmarkBackupSmallFirst(b *testing.B) {
	src := benchSmallTree(b)
	for b.Loop() {
		b.StopTimer()
		r, dir := arNewRepo(b)
		b.StartTimer()
		if _, n, err := Backup(context.Background(), r, []string{src}, ArchiveOptions{}); err != nil || n != 0 {
			b.Fatal(err, n)
		}
		b.StopTimer()
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkBackupSmallUnchanged backs up an unchanged tree of many small
// files again with the first backup as parent, through a freshly opened
// repository (index loaded, no trees cached), as a new process would.
func BenchmarkBackupSmallUnchanged(b *testing.B) {
	src := benchSmallTree(b)
	r, _ := arNewRepo(b)
	parent, _, err := Backup(context.Background(), r, []string{src}, ArchiveOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		r2, err := repo.Open(context.Background(), r.Backend(), arPassword, repo.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := r2.LoadIndex(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, n, err := Backup(context.Background(), r2, []string{src}, ArchiveOptions{Parent: parent}); err != nil || n != 0 {
			b.Fatal(err, n)
		}
	}
}
