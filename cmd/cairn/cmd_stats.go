package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"
	"github.com/spf13/cobra"
)

// statsJSON is what `stats --json` prints (restic's field names).
type statsJSON = browse.Stats

func newStatsCmd(g *globalOptions) *cobra.Command {
	var mode string
	var filt snapshotFilterFlags
	cmd := &cobra.Command{
		Use:   "stats [flags] [SNAPSHOT...]",
		Short: "Show how big snapshots and the repository are",
		Long: `Show sizes for the given snapshots (default: all that pass the filters).

Modes:
  restore-size       entries (files, directories and others, as restic counts
                     them), directories, and bytes a restore writes
                     (hard-linked files count once per snapshot)
  files-by-contents  files with distinct contents, and their bytes
  raw-data           unique blobs the snapshots reference, their stored size
                     and the compression ratio
  blobs-per-file     unique files and blobs, and how many blobs files have`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if !slices.Contains(browse.StatsModes, mode) {
				return fmt.Errorf("--mode %q is unknown: use %s", mode, strings.Join(browse.StatsModes, ", "))
			}
			var sns []*snapshot.Snapshot
			dl := &damageLog{g: g} // unreadable snapshot files: named, and exit 1
			r, done, err := g.openForBrowsing(ctx, func(r *repo.Repository) (err error) {
				sns, err = namedOrAllSnapshots(ctx, r, args, filt.filter(), dl)
				return err
			})
			if err != nil {
				return err
			}
			defer done()
			st, err := browse.ComputeStats(ctx, snapshot.NewTreeLoader(r, 4096), sns, mode)
			if err != nil {
				return err
			}
			if g.json {
				return dl.result(g.printJSON(st, false))
			}
			printStats(g, mode, st)
			return dl.result(nil)
		},
	}
	cmd.Flags().StringVar(&mode, "mode", browse.StatsRestoreSize, "counting `mode`: "+strings.Join(browse.StatsModes, ", "))
	filt.add(cmd.Flags(), "")
	return cmd
}

func printStats(g *globalOptions, mode string, st *statsJSON) {
	g.outf("Stats in %s mode:\n", mode)
	g.outf("     Snapshots processed:  %d\n", st.SnapshotsCount)
	switch mode {
	case browse.StatsRestoreSize:
		g.outf("        Total File Count:  %d\n", st.TotalFileCount)
		g.outf("    of them, directories:  %d\n", st.TotalDirCount)
		g.outf("              Total Size:  %s\n", formatBytes(st.TotalSize))
	case browse.StatsFilesByContent:
		g.outf("        Total File Count:  %d\n", st.TotalFileCount)
		g.outf("              Total Size:  %s\n", formatBytes(st.TotalSize))
	case browse.StatsRawData:
		g.outf("        Total Blob Count:  %d\n", st.TotalBlobCount)
		g.outf(" Total Uncompressed Size:  %s\n", formatBytes(st.TotalUncompressedSize))
		g.outf("              Total Size:  %s\n", formatBytes(st.TotalSize))
		if st.CompressionRatio > 0 {
			g.outf("       Compression Ratio:  %.2fx\n", st.CompressionRatio)
			g.outf("Compression Space Saving:  %.2f%%\n", st.CompressionSpaceSaving)
		}
	case browse.StatsBlobsPerFile:
		g.outf("        Total File Count:  %d\n", st.TotalFileCount)
		g.outf("        Total Blob Count:  %d\n", st.TotalBlobCount)
		g.outf("              Total Size:  %s\n", formatBytes(st.TotalSize))
		g.outf("      Max Blobs per File:  %d\n", st.MaxBlobsPerFile)
		g.outf("Blobs per file:\n")
		for _, b := range st.BlobsPerFile {
			g.outf("  %6d - %-6d %10d files\n", b.MinBlobs, b.MaxBlobs, b.Files)
		}
	}
}
