package main

import (
	"context"
	"fmt"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/checker"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// pruneFlags are prune's options; forget --prune takes them too.
type pruneFlags struct {
	maxUnused     string
	maxRepackSize string
	repackSmall   bool
}

func (f *pruneFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.maxUnused, "max-unused", "5%", "tolerate this much unused data: a `limit` in % of the repository size after pruning, a size (k/m/g/t suffixes) or 'unlimited'")
	fs.StringVar(&f.maxRepackSize, "max-repack-size", "", "read at most this `size` of packs for repacking (k/m/g/t suffixes)")
	fs.BoolVar(&f.repackSmall, "repack-small", false, "also repack packs below 80% of the target pack size")
}

func (f *pruneFlags) options(packSize int) (repo.PruneOptions, error) {
	o := repo.PruneOptions{MaxRepackSize: -1, RepackSmall: f.repackSmall, PackSize: packSize}
	var err error
	if o.MaxUnused, err = repo.ParseUnusedLimit(f.maxUnused); err != nil {
		return o, err
	}
	if f.maxRepackSize != "" {
		if o.MaxRepackSize, err = repo.ParseSize(f.maxRepackSize); err != nil {
			return o, fmt.Errorf("--max-repack-size: %w", err)
		}
	}
	return o, nil
}

func newPruneCmd(g *globalOptions) *cobra.Command {
	var f pruneFlags
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "prune [flags]",
		Short: "Remove data that no snapshot needs",
		Long: `Remove data that no snapshot needs any more.

prune reads every snapshot's trees to find the blobs still in use, then
deletes packs that hold nothing in use and rewrites ("repacks") partly used
packs until the unused data left is below --max-unused. New packs and the new
index are written before anything is deleted, so an interrupted prune leaves
at worst unused data behind. It takes an exclusive lock: no backup can run at
the same time.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if _, err := f.options(0); err != nil {
				return err
			}
			if !dryRun {
				if err := g.declareWrite("prune", exclusiveLock); err != nil {
					return err
				}
			}
			r, release, err := g.openLocked(ctx, !dryRun)
			if err != nil {
				return err
			}
			defer release()
			return runPrune(ctx, g, r, &f, dryRun, nil)
		},
	}
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "only print what would be done")
	f.add(cmd.Flags())
	return cmd
}

// pruneJSON is prune's --json summary.
type pruneJSON struct {
	MessageType string `json:"message_type"`
	DryRun      bool   `json:"dry_run"`
	Snapshots   int    `json:"snapshots"`
	repo.PruneStats
	Result *repo.PruneResult `json:"result,omitempty"`
}

// runPrune prunes r, which the caller has locked (exclusively unless
// dryRun). Snapshots in forgotten are treated as already gone (forget
// --prune --dry-run). With --json it prints the summary.
func runPrune(ctx context.Context, g *globalOptions, r *repo.Repository, f *pruneFlags, dryRun bool, forgotten map[repo.ID]bool) error {
	out, err := prune(ctx, g, r, f, dryRun, forgotten)
	if err != nil || !g.json {
		return err
	}
	return g.printJSON(out, false)
}

// prune does runPrune's work and returns its summary (text output only
// without --json).
func prune(ctx context.Context, g *globalOptions, r *repo.Repository, f *pruneFlags, dryRun bool, forgotten map[repo.ID]bool) (pruneJSON, error) {
	var out pruneJSON
	opts, err := f.options(r.PackSize())
	if err != nil {
		return out, err
	}
	g.verbosef(1, "loading index\n")
	st, err := r.LoadPruneState(ctx)
	if err != nil {
		return out, fmt.Errorf("prune: %w", err)
	}
	sns, err := snapshot.LoadAllSnapshots(ctx, r)
	if err != nil {
		return out, fmt.Errorf("prune: %w; nothing was deleted (remove or repair the snapshot first)", err)
	}
	kept := sns[:0:0]
	for _, sn := range sns {
		if !forgotten[sn.ID] {
			kept = append(kept, sn)
		}
	}
	g.printf("finding data in use by %s\n", plural(len(kept), "snapshot"))
	progress := &snapshot.Progress{}
	progress.SetCurrent("reading trees")
	stop := g.startProgress(progress, "trees")
	used, err := checker.UsedBlobs(ctx, snapshot.NewTreeLoader(r, 256), kept, func() { progress.Files.Add(1) })
	stop()
	if err != nil {
		return out, fmt.Errorf("prune: %w; nothing was deleted (run `cairn check`)", err)
	}
	plan, err := repo.PlanPrune(st.Input(used), opts)
	if err != nil {
		return out, err
	}
	out = pruneJSON{MessageType: "summary", DryRun: dryRun, Snapshots: len(kept), PruneStats: plan.Stats}
	printPrunePlan(g, &plan.Stats, opts)
	if dryRun {
		g.printf("\ndry run: nothing was changed\n")
		return out, nil
	}
	if err := g.checkWritable("prune"); err != nil {
		return out, err
	}
	if plan.Stats.RepackPacks+plan.Stats.RemovePacks+plan.Stats.UnindexedPacks+plan.Stats.DamagedPacks+plan.Stats.MissingPacks == 0 {
		g.printf("\nnothing to do\n")
		return out, nil
	}
	g.printf("\n")
	res, err := r.Prune(ctx, st, plan, used, func(s string) { g.printf("%s\n", s) })
	if err != nil {
		return out, err
	}
	out.Result = &res
	g.printf("done: removed %s (%s), wrote %s (%s); %s of packs remain\n",
		plural(res.PacksRemoved, "pack"), formatBytes(uint64(res.RemovedSize)),
		plural(res.NewPacks, "new pack"), formatBytes(uint64(res.NewPackSize)),
		formatBytes(uint64(plan.Stats.KeepSize+res.NewPackSize)))
	return out, nil
}

func printPrunePlan(g *globalOptions, st *repo.PruneStats, opts repo.PruneOptions) {
	b := func(n int64) string { return formatBytes(uint64(max(n, 0))) }
	g.printf("repository:    %s, %s, %s\n", plural(st.Packs, "pack"), plural(st.Blobs, "blob"), b(st.TotalSize))
	g.printf("used:          %s, %s\n", plural(st.UsedBlobs, "blob"), b(st.UsedSize))
	unused := fmt.Sprintf("%s, %s", plural(st.UnusedBlobs, "blob"), b(st.UnusedSize))
	if st.DuplicateBlobs > 0 {
		unused += fmt.Sprintf(" (%d duplicate copies)", st.DuplicateBlobs)
	}
	g.printf("unused:        %s\n\n", unused)
	g.printf("to keep:       %s, %s\n", plural(st.KeepPacks, "pack"), b(st.KeepSize))
	g.printf("to repack:     %s, %s (copying %s, %s)\n", plural(st.RepackPacks, "pack"), b(st.RepackSize), plural(st.RepackBlobs, "blob"), b(st.RepackUsedSize))
	g.printf("to remove:     %s, %s\n", plural(st.RemovePacks, "pack"), b(st.RemoveSize))
	if st.UnindexedPacks > 0 {
		g.printf("not indexed:   %s, %s (removed too)\n", plural(st.UnindexedPacks, "pack"), b(st.UnindexedSize))
	}
	if st.DamagedPacks+st.MissingPacks > 0 {
		g.printf("damaged:       %d packs differ from the index and %d are missing; nothing needed is only there, so they leave the index\n", st.DamagedPacks, st.MissingPacks)
	}
	share := 0.0
	if st.SizeAfter > 0 {
		share = 100 * float64(st.UnusedAfter) / float64(st.SizeAfter)
	}
	g.printf("unused after:  %s (%.1f%% of %s; --max-unused %s)\n", b(st.UnusedAfter), share, b(st.SizeAfter), opts.MaxUnused)
}
