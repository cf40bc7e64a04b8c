package main

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/checker"
	"github.com/spf13/cobra"
)

func newCheckCmd(g *globalOptions) *cobra.Command {
	var readData bool
	var subset string
	cmd := &cobra.Command{
		Use:   "check [--read-data | --read-data-subset N/M|P%]",
		Short: "Check the repository for errors",
		Long: `Check the structure of the repository: that index, packs, snapshots and
trees are consistent and every referenced blob exists. --read-data also reads
and verifies all pack files; --read-data-subset reads a part of them: "n/m"
(the n-th of m groups) or "p%" (a random share).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if readData && subset != "" {
				return errors.New("--read-data and --read-data-subset contradict each other: give one of them")
			}
			if subset != "" {
				if _, err := repo.SelectPacks(nil, subset); err != nil {
					return err
				}
			}
			// check judges the repository, not what earlier runs cached: like
			// restic it gets a cache of its own, so each tree pack is still
			// fetched only once.
			if tmp, err := os.MkdirTemp("", "cairn-check-cache-"); err == nil {
				g.cacheTemp = tmp
				defer os.RemoveAll(tmp)
			}
			r, release, err := g.openLocked(ctx, false)
			if err != nil {
				return err
			}
			defer release()

			var errs, warns atomic.Int64
			report := func(sev checker.Severity, msg string) {
				if sev == checker.SevWarning {
					warns.Add(1)
					g.warnf("warning: %s\n", msg)
					return
				}
				errs.Add(1)
				g.warnf("error: %s\n", msg)
			}
			progress := &snapshot.Progress{}
			stop := g.startProgress(progress, "packs read")
			res, err := checker.Check(ctx, r, checker.CheckOptions{ReadData: readData, ReadDataSubset: subset, Progress: progress}, report)
			stop()
			if err != nil {
				return err
			}
			nerr := max(res.Errors, int(errs.Load()))
			if g.json {
				if err := g.printJSON(map[string]any{
					"message_type": "summary", "errors": nerr, "warnings": max(res.Warnings, int(warns.Load())),
					"snapshots": res.Snapshots, "trees": res.Trees, "packs": res.Packs, "blobs": res.Blobs,
					"read_data_packs": res.ReadDataPacks, "read_data_bytes": res.ReadDataBytes,
				}, false); err != nil {
					return err
				}
			} else {
				g.printf("checked %s, %s, %s, %s\n", plural(res.Snapshots, "snapshot"), plural(res.Trees, "tree"), plural(res.Packs, "pack"), plural(res.Blobs, "blob"))
				if res.ReadDataPacks > 0 {
					g.printf("read and verified %d packs (%s)\n", res.ReadDataPacks, formatBytes(uint64(res.ReadDataBytes)))
				}
			}
			if nerr > 0 {
				return fmt.Errorf("check found %s (listed above); the repository needs repair", plural(nerr, "error"))
			}
			g.printf("no errors were found\n")
			return nil
		},
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "read and verify all pack files")
	cmd.Flags().StringVar(&subset, "read-data-subset", "", "read and verify a `subset` of the packs: n/m or p%")
	return cmd
}
