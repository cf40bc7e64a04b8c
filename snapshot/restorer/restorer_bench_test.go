package restorer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/tests/testutil"
)

// benchSource makes 256 MiB in four random files plus 2000 small files
// (about 64 MiB) and returns its directory and total file bytes.
func benchSource(b *testing.B) (string, int64) {
	dir := b.TempDir()
	testutil.GenTree(b, dir, testutil.GenOptions{Seed: 1, SmallFiles: 2000, Depth: 2,
		LargeFiles: []int64{64 << 20, 64 << 20, 64 << 20, 64 << 20}})
	var size int64
	must(b, filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			size += fi.Size()
		}
		return err
	}))
	return dir, size
}

func BenchmarkRestore(b *testing.B) {
	src, size := benchSource(b)
	b.Run("cairn", func(b *testing.B) {
		r, _ := rtNewRepo(b, 2, 0)
		sn := rtBackup(b, r, src)
		b.SetBytes(size)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			target := filepath.Join(b.TempDir(), "t")
			n, err := Restore(context.Background(), r, sn, "", RestoreOptions{Target: target})
			if err != nil || n != 0 {
				b.Fatalf("restore: %d failures, %v", n, err)
			}
			b.StopTimer()
			must(b, os.RemoveAll(target))
			b.StartTimer()
		}
	})
	b.Run("restic", func(b *testing.B) {
		testutil.ResticBin(b)
		dir := filepath.Join(b.TempDir(), "repo")
		if _, err := testutil.RunRestic(b, dir, rtPassword, "init", "--repository-version", "2"); err != nil {
			b.Fatal(err)
		}
		if _, err := testutil.RunRestic(b, dir, rtPassword, "backup", src); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			target := filepath.Join(b.TempDir(), "t")
			if _, err := testutil.RunRestic(b, dir, rtPassword, "restore", "latest", "--target", target); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			must(b, os.RemoveAll(target))
			b.StartTimer()
		}
	})
}

// BenchmarkRestoreSmall restores 20000 small files (up to 4 KiB) in about
// 600 directories up to 6 deep: per-file and per-directory costs (creating,
// opening, metadata) dominate, not data. "walk" forces the descriptor walk
// used where openat2 is missing.
func BenchmarkRestoreSmall(b *testing.B) {
	src := b.TempDir()
	testutil.GenTree(b, src, testutil.GenOptions{Seed: 2, SmallFiles: 20000, MaxSmallSize: 4096, Depth: 6, Modes: true, Symlinks: true})
	r, _ := rtNewRepo(b, 2, 0)
	sn := rtBackup(b, r, src)
	for _, walk := range []bool{false, true} {
		name := map[bool]string{false: "openat2", true: "walk"}[walk]
		b.Run(name, func(b *testing.B) {
			forceDirWalk = walk
			defer func() { forceDirWalk = false }()
			for i := 0; i < b.N; i++ {
				target := filepath.Join(b.TempDir(), "t")
				n, err := Restore(context.Background(), r, sn, "", RestoreOptions{Target: target})
				if err != nil || n != 0 {
					b.Fatalf("restore: %d failures, %v", n, err)
				}
				b.StopTimer()
				must(b, os.RemoveAll(target))
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/20000, "ns/file")
		})
	}
}
