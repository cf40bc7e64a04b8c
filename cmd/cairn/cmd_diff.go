package main

import (
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"
	"github.com/spf13/cobra"
)

type diffChangeJSON struct {
	MessageType string `json:"message_type"`
	Path        string `json:"path"`
	Modifier    string `json:"modifier"`
}

type diffStatsJSON struct {
	MessageType    string `json:"message_type"`
	SourceSnapshot string `json:"source_snapshot"`
	TargetSnapshot string `json:"target_snapshot"`
	*browse.DiffStats
}

func newDiffCmd(g *globalOptions) *cobra.Command {
	var metadata bool
	cmd := &cobra.Command{
		Use:   "diff [flags] SNAPSHOT-1 SNAPSHOT-2",
		Short: "Show what changed between two snapshots",
		Long: `Show the differences between two snapshots, one path per line:

  +  added            -  removed
  M  content changed  T  type changed
  U  metadata changed (only with --metadata)

and a summary of the files, directories and blobs added and removed. The
byte counts are the plaintext sizes of the data blobs only one side has.
A directory that cannot be read is named on stderr and skipped; diff then
shows the rest and exits 1.`,
		Args: exactArgs(2, "two snapshots (IDs or latest)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var a, b *snapshot.Snapshot
			r, done, err := g.openForBrowsing(ctx, func(r *repo.Repository) (err error) {
				if a, err = browseSnapshot(ctx, r, args[0], snapshot.Filter{}); err != nil {
					return err
				}
				b, err = browseSnapshot(ctx, r, args[1], snapshot.Filter{})
				return err
			})
			if err != nil {
				return err
			}
			defer done()
			dl := &damageLog{g: g}
			out := newResultWriter(g.env.stdout)
			if !g.json {
				out.line("comparing snapshot %s to %s:\n", a.ID.Str(), b.ID.Str())
			}
			st, err := browse.Diff(ctx, snapshot.NewTreeLoader(r, 4096), *a.Tree, *b.Tree, browse.DiffOptions{Metadata: metadata, Damaged: func(p string, err error) error {
				if out.err == nil {
					out.err = out.Flush()
				}
				return dl.damaged(p, err)
			}},
				func(c browse.DiffChange) error {
					if g.json {
						out.json(diffChangeJSON{MessageType: "change", Path: c.DisplayPath(), Modifier: c.Modifier})
					} else {
						out.line("%-5s%s", c.Modifier, c.DisplayPath())
					}
					return out.err
				})
			if err != nil {
				return err
			}
			if g.json {
				out.json(diffStatsJSON{MessageType: "statistics", SourceSnapshot: a.ID.String(), TargetSnapshot: b.ID.String(), DiffStats: st})
				return dl.result(out.finish())
			}
			ad, rm := st.Added, st.Removed
			out.line("")
			out.line("Files:       %5d new, %5d removed, %5d changed", ad.Files, rm.Files, st.ChangedFiles)
			out.line("Dirs:        %5d new, %5d removed", ad.Dirs, rm.Dirs)
			out.line("Others:      %5d new, %5d removed", ad.Others, rm.Others)
			out.line("Data Blobs:  %5d new, %5d removed", ad.DataBlobs, rm.DataBlobs)
			out.line("Tree Blobs:  %5d new, %5d removed", ad.TreeBlobs, rm.TreeBlobs)
			out.line("  Added:   %s", formatBytes(ad.Bytes))
			out.line("  Removed: %s", formatBytes(rm.Bytes))
			return dl.result(out.finish())
		},
	}
	cmd.Flags().BoolVar(&metadata, "metadata", false, "also show files whose metadata (mode, owner, mtime, xattrs) changed")
	return cmd
}
