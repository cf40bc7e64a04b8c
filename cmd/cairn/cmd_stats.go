package main

import (
	"context"
	"fmt"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
)

// statsJSON uses restic's field names.
type statsJSON struct {
	TotalSize              uint64  `json:"total_size"`
	TotalFileCount         uint64  `json:"total_file_count,omitempty"`
	TotalBlobCount         uint64  `json:"total_blob_count,omitempty"`
	SnapshotsCount         int     `json:"snapshots_count"`
	TotalUncompressedSize  uint64  `json:"total_uncompressed_size,omitempty"`
	CompressionRatio       float64 `json:"compression_ratio,omitempty"`
	CompressionSpaceSaving float64 `json:"compression_space_saving,omitempty"`
}

func newStatsCmd(g *globalOptions) *cobra.Command {
	var mode string
	var filt snapshotFilterFlags
	cmd := &cobra.Command{
		Use:   "stats [flags] [SNAPSHOT...]",
		Short: "Show how big snapshots and the repository are",
		Long: `Show sizes for the given snapshots (default: all that pass the filters).

Modes:
  restore-size  number of files and bytes a restore of the snapshots writes
  raw-data      unique blobs the snapshots reference, their stored size and
                the compression ratio`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if mode != "restore-size" && mode != "raw-data" {
				return fmt.Errorf("--mode %q is unknown: use restore-size or raw-data", mode)
			}
			r, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			unlock, err := g.lock(ctx, r, false)
			if err != nil {
				return err
			}
			defer unlock()
			if err := r.LoadIndex(ctx); err != nil {
				return err
			}
			var sns []*snapshot.Snapshot
			if len(args) == 0 {
				warn := func(err error) { g.warnf("warning: %v\n", err) }
				if sns, err = snapshot.ListSnapshots(ctx, r, filt.filter(), warn); err != nil {
					return err
				}
			}
			for _, a := range args {
				sn, err := snapshot.FindSnapshot(ctx, r, a, filt.filter())
				if err != nil {
					return err
				}
				sns = append(sns, sn)
			}
			loader := snapshot.NewTreeLoader(r, 1024)
			var st statsJSON
			if mode == "restore-size" {
				st, err = restoreSize(ctx, loader, sns)
			} else {
				st, err = rawData(ctx, r, loader, sns)
			}
			if err != nil {
				return err
			}
			st.SnapshotsCount = len(sns)
			if g.json {
				return g.printJSON(st, false)
			}
			g.outf("Stats in %s mode:\n", mode)
			g.outf("     Snapshots processed:  %d\n", st.SnapshotsCount)
			if mode == "restore-size" {
				g.outf("        Total File Count:  %d\n", st.TotalFileCount)
				g.outf("              Total Size:  %s\n", formatBytes(st.TotalSize))
				return nil
			}
			g.outf("        Total Blob Count:  %d\n", st.TotalBlobCount)
			g.outf(" Total Uncompressed Size:  %s\n", formatBytes(st.TotalUncompressedSize))
			g.outf("              Total Size:  %s\n", formatBytes(st.TotalSize))
			if st.CompressionRatio > 0 {
				g.outf("       Compression Ratio:  %.2fx\n", st.CompressionRatio)
				g.outf("Compression Space Saving:  %.2f%%\n", st.CompressionSpaceSaving)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "restore-size", "counting `mode`: restore-size or raw-data")
	filt.add(cmd.Flags(), "")
	return cmd
}

// restoreSize counts every node of the snapshots (as restic does) and the
// bytes of their files; hard-linked files count once per snapshot.
func restoreSize(ctx context.Context, loader *snapshot.TreeLoader, sns []*snapshot.Snapshot) (statsJSON, error) {
	var st statsJSON
	type inode struct{ dev, ino uint64 }
	for _, sn := range sns {
		seen := map[inode]bool{}
		err := snapshot.Walk(ctx, loader, *sn.Tree, func(_ string, n *snapshot.Node) error {
			st.TotalFileCount++
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
			return st, fmt.Errorf("snapshot %s: %w", sn.ID.Str(), err)
		}
	}
	return st, nil
}

// rawData sums the stored and plaintext sizes of the unique blobs that the
// snapshots reference.
func rawData(ctx context.Context, r *repo.Repository, loader *snapshot.TreeLoader, sns []*snapshot.Snapshot) (statsJSON, error) {
	var st statsJSON
	seen := map[repo.BlobHandle]bool{}
	add := func(t repo.BlobType, id repo.ID) bool {
		h := repo.BlobHandle{ID: id, Type: t}
		if seen[h] {
			return false
		}
		seen[h] = true
		if locs := r.LookupBlob(t, id); len(locs) > 0 {
			st.TotalBlobCount++
			st.TotalSize += uint64(locs[0].Length)
			st.TotalUncompressedSize += uint64(locs[0].PlaintextLength())
		}
		return true
	}
	for _, sn := range sns {
		if !add(repo.TreeBlob, *sn.Tree) {
			continue // the same tree was counted for an earlier snapshot
		}
		err := snapshot.Walk(ctx, loader, *sn.Tree, func(_ string, n *snapshot.Node) error {
			for _, id := range n.Content {
				add(repo.DataBlob, id)
			}
			if n.Subtree != nil && !add(repo.TreeBlob, *n.Subtree) {
				return snapshot.ErrSkipDir // everything below is counted already
			}
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("snapshot %s: %w", sn.ID.Str(), err)
		}
	}
	if st.TotalSize > 0 && st.TotalUncompressedSize > 0 {
		st.CompressionRatio = float64(st.TotalUncompressedSize) / float64(st.TotalSize)
		st.CompressionSpaceSaving = 100 * (1 - float64(st.TotalSize)/float64(st.TotalUncompressedSize))
	}
	return st, nil
}
