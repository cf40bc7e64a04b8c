package main

import (
	"fmt"
	"runtime"

	"github.com/cairn-backup/cairn/repo"
	"github.com/spf13/cobra"
)

var listTypes = map[string]repo.FileType{
	"snapshots": repo.SnapshotFile,
	"index":     repo.IndexFile,
	"packs":     repo.PackFile,
	"keys":      repo.KeyFile,
	"locks":     repo.LockFile,
}

func newListCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:       "list snapshots|index|packs|keys|locks|blobs",
		Short:     "List the IDs of files (or blobs) in the repository",
		Args:      exactArgs(1, "one type: snapshots, index, packs, keys, locks or blobs"),
		ValidArgs: []string{"snapshots", "index", "packs", "keys", "locks", "blobs"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, ok := listTypes[args[0]]
			if !ok && args[0] != "blobs" {
				return fmt.Errorf("cannot list %q: use snapshots, index, packs, keys, locks or blobs", args[0])
			}
			r, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			out := cmd.OutOrStdout()
			if args[0] == "blobs" {
				if err := r.LoadIndex(ctx); err != nil {
					return err
				}
				var err error
				r.Index().Each(func(pb repo.PackedBlob) bool {
					_, err = fmt.Fprintf(out, "%s %s\n", pb.Type, pb.ID)
					return err == nil
				})
				return err
			}
			return r.List(ctx, t, func(id repo.ID, _ int64) error {
				_, err := fmt.Fprintln(out, id)
				return err
			})
		},
	}
}

func newUnlockCmd(g *globalOptions) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "unlock",
		Short: "Remove stale locks (or all locks with --remove-all)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := g.declareWrite("unlock", noLockNeeded); err != nil {
				return err
			}
			r, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			n, err := r.RemoveLocks(ctx, all)
			if err != nil {
				return err
			}
			kind := "stale lock"
			if all {
				kind = "lock"
			}
			g.printf("removed %s\n", plural(n, kind))
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "remove-all", false, "remove all locks, even those of running processes")
	return cmd
}

func newVersionCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version information",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.json {
				return g.printJSON(map[string]string{
					"message_type": "version",
					"version":      version,
					"go_version":   runtime.Version(),
					"go_os":        runtime.GOOS,
					"go_arch":      runtime.GOARCH,
				}, false)
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "cairn %s compiled with %s on %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}

func newCompletionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print a completion script for the shell. For bash, for example:

  cairn completion bash > /etc/bash_completion.d/cairn`,
		Args:      exactArgs(1, "one shell: bash, zsh, fish or powershell"),
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(out)
			}
			return fmt.Errorf("no completion for shell %q: use bash, zsh, fish or powershell", args[0])
		},
	}
}
