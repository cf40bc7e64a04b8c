package main

import (
	"github.com/spf13/cobra"
)

func newRepairCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Repair a damaged repository",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "index",
		Short: "Rebuild the index from the pack files",
		Long: `Read the header of every pack file and write a new index that replaces
all existing index files. Use it when an index file is missing, truncated or
damaged. Packs whose header is damaged are reported and left out.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := g.declareWrite("repair index", exclusiveLock); err != nil {
				return err
			}
			r, release, err := g.openLocked(ctx, true)
			if err != nil {
				return err
			}
			defer release()
			res, err := r.RebuildIndex(ctx, func(msg string) { g.warnf("warning: %s\n", msg) })
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(map[string]any{
					"packs": res.Packs, "blobs": res.Blobs, "damaged_packs": len(res.DamagedPacks),
					"replaced_index_files": res.OldIndexes,
				}, false)
			}
			g.printf("indexed %d blobs in %d packs, replaced %d index files", res.Blobs, res.Packs, res.OldIndexes)
			if n := len(res.DamagedPacks); n > 0 {
				g.printf("; %d damaged packs were left out (run `cairn check --read-data`)", n)
			}
			g.printf("\n")
			return nil
		},
	})
	return cmd
}
