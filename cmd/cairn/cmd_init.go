package main

import (
	"fmt"

	"github.com/cairn-backup/cairn/repo"
	"github.com/spf13/cobra"
)

func newInitCmd(g *globalOptions) *cobra.Command {
	var repoVersion string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Long: `Create a new, empty repository at the location given with -r/--repo.

The password is asked twice at a terminal, or taken from --password-file or
$CAIRN_PASSWORD.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := g.checkWritable("init"); err != nil {
				return err
			}
			version, err := parseRepoVersion(repoVersion)
			if err != nil {
				return err
			}
			if g.repo == "" {
				_, err := g.openBackend(ctx, "", true)
				return err
			}
			pw, err := g.password(ctx, true)
			if err != nil {
				return err
			}
			if g.kdf, err = g.kdfParams(); err != nil {
				return err
			}
			be, err := g.openBackend(ctx, g.repo, true)
			if err != nil {
				return err
			}
			defer be.Close()
			r, err := repo.Init(ctx, be, pw, version, g.repoOptions())
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(map[string]any{
					"message_type": "initialized",
					"id":           r.Config().ID,
					"repository":   be.Location(),
					"version":      r.Config().Version,
				}, false)
			}
			g.printf("created cairn repository %s at %s (format version %d)\n\n", shortRepoID(r), be.Location(), r.Config().Version)
			g.printf("Please note that knowledge of your password is required to access\n" +
				"the repository. Losing your password means that your data is\n" +
				"irrecoverably lost.\n")
			return nil
		},
	}
	cmd.Flags().StringVar(&repoVersion, "repository-version", "2", "repository format `version` to create: 1, 2, latest or stable")
	return cmd
}

func parseRepoVersion(s string) (int, error) {
	switch s {
	case "1":
		return 1, nil
	case "2", "latest", "stable", "":
		return 2, nil
	}
	return 0, fmt.Errorf("--repository-version %q is not supported: use 1 or 2", s)
}
