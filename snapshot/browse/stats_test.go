package browse

import (
	"context"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/testutil"
)

func TestStats(t *testing.T) {
	r := brNewRepo(t)
	src := t.TempDir()
	opts := brGenOptions(13)
	opts.Unicode, opts.Symlinks = false, false
	testutil.GenTree(t, src, opts)
	// Two files with the same content: one unique content.
	brRandom(t, filepath.Join(src, "twin-a"), 7000, 99)
	brRandom(t, filepath.Join(src, "twin-b"), 7000, 99)
	t0 := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	sn1 := brBackup(t, r, src, t0)
	sn2 := brBackup(t, r, src, t0.Add(time.Hour))
	sns := []*snapshot.Snapshot{sn1, sn2}
	l := snapshot.NewTreeLoader(r, 256)

	// What the test knows about the source.
	var files, dirs, size uint64
	contents := map[[32]byte]uint64{}
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			dirs++
			return nil
		}
		files++
		data, _ := os.ReadFile(p)
		size += uint64(len(data))
		contents[sha256.Sum256(data)] = uint64(len(data))
		return nil
	})
	// The snapshot also holds the directories above src.
	var above uint64
	for d := filepath.Dir(src); d != "/"; d = filepath.Dir(d) {
		above++
	}

	st := brStats(t, l, sns, StatsRestoreSize)
	if st.TotalFileCount != 2*(files+dirs+above) || st.TotalDirCount != 2*(dirs+above) || st.TotalSize != 2*size || st.SnapshotsCount != 2 {
		t.Fatalf("restore-size = %+v; want %d entries, %d dirs, %d bytes", st, 2*(files+dirs+above), 2*(dirs+above), 2*size)
	}

	st = brStats(t, l, sns, StatsFilesByContent)
	var uniqueSize uint64
	for _, n := range contents {
		uniqueSize += n
	}
	if st.TotalFileCount != uint64(len(contents)) || st.TotalSize != uniqueSize {
		t.Fatalf("files-by-contents = %+v; want %d files, %d bytes", st, len(contents), uniqueSize)
	}

	// raw-data: compare with the blobs a walk of both snapshots finds.
	blobs := map[repo.BlobHandle]bool{{ID: *sn1.Tree, Type: repo.TreeBlob}: true, {ID: *sn2.Tree, Type: repo.TreeBlob}: true}
	for _, sn := range sns {
		must(t, snapshot.Walk(context.Background(), l, *sn.Tree, func(_ string, n *snapshot.Node) error {
			for _, id := range n.Content {
				blobs[repo.BlobHandle{ID: id, Type: repo.DataBlob}] = true
			}
			if n.Subtree != nil {
				blobs[repo.BlobHandle{ID: *n.Subtree, Type: repo.TreeBlob}] = true
			}
			return nil
		}))
	}
	var stored, plain uint64
	for h := range blobs {
		pb := r.LookupBlob(h.Type, h.ID)[0]
		stored += uint64(pb.Length)
		plain += uint64(pb.PlaintextLength())
	}
	st = brStats(t, l, sns, StatsRawData)
	if st.TotalBlobCount != uint64(len(blobs)) || st.TotalSize != stored || st.TotalUncompressedSize != plain {
		t.Fatalf("raw-data = %+v; want %d blobs, %d stored, %d plain", st, len(blobs), stored, plain)
	}
	// A quarter of the files are text: zstd makes the data smaller.
	if st.CompressionRatio <= 1 || st.CompressionSpaceSaving <= 0 {
		t.Fatalf("raw-data compression: %+v", st)
	}

	st = brStats(t, l, sns, StatsBlobsPerFile)
	var inHist uint64
	for _, b := range st.BlobsPerFile {
		inHist += uint64(b.Files)
		if b.MinBlobs > b.MaxBlobs {
			t.Fatalf("bad bucket %+v", b)
		}
	}
	large := brNode(t, l, sn1, filepath.Join(src, "large-00.bin"))
	if st.TotalFileCount != uint64(len(contents)) || inHist != st.TotalFileCount || st.MaxBlobsPerFile != len(large.Content) || st.MaxBlobsPerFile < 2 {
		t.Fatalf("blobs-per-file = %+v (histogram holds %d files; large file has %d blobs)", st, inHist, len(large.Content))
	}
	last := st.BlobsPerFile[len(st.BlobsPerFile)-1]
	if last.Files != 1 || last.MinBlobs > st.MaxBlobsPerFile || last.MaxBlobs < st.MaxBlobsPerFile {
		t.Fatalf("the large file is not in the last bucket: %+v", st.BlobsPerFile)
	}
	if _, err := ComputeStats(context.Background(), l, sns, "bogus"); err == nil {
		t.Fatal("unknown mode accepted")
	}
}

func brStats(t *testing.T, l *snapshot.TreeLoader, sns []*snapshot.Snapshot, mode string) *Stats {
	t.Helper()
	st, err := ComputeStats(context.Background(), l, sns, mode)
	if err != nil {
		t.Fatalf("stats %s: %v", mode, err)
	}
	return st
}
