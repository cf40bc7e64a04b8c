package browse

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/bits"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// Stats modes.
const (
	StatsRestoreSize    = "restore-size"
	StatsFilesByContent = "files-by-contents"
	StatsRawData        = "raw-data"
	StatsBlobsPerFile   = "blobs-per-file"
)

// StatsModes lists the modes ComputeStats knows.
var StatsModes = []string{StatsRestoreSize, StatsFilesByContent, StatsRawData, StatsBlobsPerFile}

// BlobsBucket is one bar of the blobs-per-file distribution: how many
// unique files have MinBlobs..MaxBlobs content blobs.
type BlobsBucket struct {
	MinBlobs int `json:"min_blobs"`
	MaxBlobs int `json:"max_blobs"`
	Files    int `json:"files"`
}

// Stats is the result of ComputeStats; which fields are set depends on the
// mode. JSON field names follow restic's `stats --json`.
type Stats struct {
	SnapshotsCount int `json:"snapshots_count"`
	// TotalSize: restore-size: bytes a restore writes; files-by-contents:
	// bytes of the unique contents; raw-data: stored (encrypted, maybe
	// compressed) bytes of the unique blobs; blobs-per-file: plaintext
	// bytes of the unique blobs of the unique files.
	TotalSize      uint64 `json:"total_size"`
	TotalFileCount uint64 `json:"total_file_count,omitempty"`
	TotalDirCount  uint64 `json:"total_dir_count,omitempty"`
	TotalBlobCount uint64 `json:"total_blob_count,omitempty"`
	// raw-data only
	TotalUncompressedSize  uint64  `json:"total_uncompressed_size,omitempty"`
	CompressionRatio       float64 `json:"compression_ratio,omitempty"`
	CompressionSpaceSaving float64 `json:"compression_space_saving,omitempty"`
	// blobs-per-file only
	MaxBlobsPerFile int           `json:"max_blobs_per_file,omitempty"`
	BlobsPerFile    []BlobsBucket `json:"blobs_per_file,omitempty"`
}

// ComputeStats counts the snapshots in one of the StatsModes:
//
//   - restore-size: every node of every snapshot (TotalFileCount counts
//     all nodes, directories included, as restic does; TotalDirCount the
//     directories among them) and the bytes of the files; hard-linked
//     files count once per snapshot;
//   - files-by-contents: files with distinct content lists, and their size;
//   - raw-data: the unique data and tree blobs the snapshots reference,
//     their stored and plaintext sizes and the compression ratio;
//   - blobs-per-file: the unique files (by content), their unique blobs and
//     a power-of-two histogram of how many blobs a file has.
func ComputeStats(ctx context.Context, loader *snapshot.TreeLoader, sns []*snapshot.Snapshot, mode string) (*Stats, error) {
	st := &Stats{SnapshotsCount: len(sns)}
	var visit func(n *snapshot.Node) error
	var err error
	switch mode {
	case StatsRestoreSize:
		err = restoreSizeStats(ctx, loader, sns, st)
	case StatsRawData:
		err = rawDataStats(ctx, loader, sns, st)
	case StatsFilesByContent, StatsBlobsPerFile:
		r := loader.Repository()
		files := map[[32]byte]bool{}
		blobs := map[repo.ID]bool{}
		hist := map[int]int{} // bucket exponent -> files
		visit = func(n *snapshot.Node) error {
			if n.Type != snapshot.NodeFile {
				return nil
			}
			k := contentKey(n.Content)
			if files[k] {
				return nil
			}
			files[k] = true
			st.TotalFileCount++
			if mode == StatsFilesByContent {
				st.TotalSize += n.Size
				return nil
			}
			hist[bits.Len(uint(len(n.Content)))]++
			st.MaxBlobsPerFile = max(st.MaxBlobsPerFile, len(n.Content))
			for _, id := range n.Content {
				if blobs[id] {
					continue
				}
				blobs[id] = true
				st.TotalBlobCount++
				if locs := r.LookupBlob(repo.DataBlob, id); len(locs) > 0 {
					st.TotalSize += uint64(locs[0].PlaintextLength())
				}
			}
			return nil
		}
		err = walkUniqueTrees(ctx, loader, sns, visit)
		if mode == StatsBlobsPerFile {
			for e := 0; e <= bits.Len(uint(st.MaxBlobsPerFile)); e++ {
				b := BlobsBucket{MinBlobs: 0, MaxBlobs: 0}
				if e > 0 {
					b.MinBlobs, b.MaxBlobs = 1<<(e-1), 1<<e-1
				}
				b.Files = hist[e]
				st.BlobsPerFile = append(st.BlobsPerFile, b)
			}
		}
	default:
		return nil, fmt.Errorf("stats: unknown mode %q (known: restore-size, files-by-contents, raw-data, blobs-per-file)", mode)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// contentKey identifies a file's content by its blob list.
func contentKey(content []repo.ID) [32]byte {
	h := sha256.New()
	for _, id := range content {
		h.Write(id[:])
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// walkUniqueTrees visits the nodes of the snapshots, but each distinct
// subtree only once (for modes that count unique things).
func walkUniqueTrees(ctx context.Context, loader *snapshot.TreeLoader, sns []*snapshot.Snapshot, visit func(*snapshot.Node) error) error {
	seen := map[repo.ID]bool{}
	for _, sn := range sns {
		if seen[*sn.Tree] {
			continue
		}
		seen[*sn.Tree] = true
		err := snapshot.Walk(ctx, loader, *sn.Tree, func(_ string, n *snapshot.Node) error {
			if err := visit(n); err != nil {
				return err
			}
			if n.Subtree != nil {
				if seen[*n.Subtree] {
					return snapshot.ErrSkipDir
				}
				seen[*n.Subtree] = true
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", sn.ID.Str(), err)
		}
	}
	return nil
}

func restoreSizeStats(ctx context.Context, loader *snapshot.TreeLoader, sns []*snapshot.Snapshot, st *Stats) error {
	type inode struct{ dev, ino uint64 }
	for _, sn := range sns {
		seen := map[inode]bool{}
		err := snapshot.Walk(ctx, loader, *sn.Tree, func(_ string, n *snapshot.Node) error {
			st.TotalFileCount++
			if n.Type == snapshot.NodeDir {
				st.TotalDirCount++
			}
			if n.Type != snapshot.NodeFile {
				return nil
			}
			if n.Links > 1 && n.Inode != 0 {
				k := inode{n.DeviceID, n.Inode}
				if seen[k] {
					return nil
				}
				seen[k] = true
			}
			st.TotalSize += n.Size
			return nil
		})
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", sn.ID.Str(), err)
		}
	}
	return nil
}

func rawDataStats(ctx context.Context, loader *snapshot.TreeLoader, sns []*snapshot.Snapshot, st *Stats) error {
	r := loader.Repository()
	seen := map[repo.BlobHandle]bool{}
	add := func(t repo.BlobType, id repo.ID) {
		h := repo.BlobHandle{ID: id, Type: t}
		if seen[h] {
			return
		}
		seen[h] = true
		if locs := r.LookupBlob(t, id); len(locs) > 0 {
			st.TotalBlobCount++
			st.TotalSize += uint64(locs[0].Length)
			st.TotalUncompressedSize += uint64(locs[0].PlaintextLength())
		}
	}
	roots := map[repo.ID]bool{}
	for _, sn := range sns {
		if !roots[*sn.Tree] {
			roots[*sn.Tree] = true
			add(repo.TreeBlob, *sn.Tree)
		}
	}
	err := walkUniqueTrees(ctx, loader, sns, func(n *snapshot.Node) error {
		for _, id := range n.Content {
			add(repo.DataBlob, id)
		}
		if n.Subtree != nil {
			add(repo.TreeBlob, *n.Subtree)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if st.TotalSize > 0 && st.TotalUncompressedSize > 0 {
		st.CompressionRatio = float64(st.TotalUncompressedSize) / float64(st.TotalSize)
		st.CompressionSpaceSaving = 100 * (1 - float64(st.TotalSize)/float64(st.TotalUncompressedSize))
	}
	return nil
}
