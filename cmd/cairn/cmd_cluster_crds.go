package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/spf13/cobra"
)

func init() { clusterSubcommands = append(clusterSubcommands, newClusterInstallCRDsCmd) }

type installCRDsFlags struct {
	dryRun  bool
	output  string
	timeout time.Duration
}

func newClusterInstallCRDsCmd(g *globalOptions, co *clusterOptions) *cobra.Command {
	var f installCRDsFlags
	cmd := &cobra.Command{
		Use:   "install-crds",
		Short: "Install the custom resources cairn's node agents work from",
		Long: `Install (or update) the CustomResourceDefinitions of the volume
resources, VolumeBackup and VolumeRestore (cairn.io/v1alpha1), through which
cairn cluster backup and restore hand pod volume data to the node agents.

The CRDs are applied server-side (field manager "cairn") and the command
waits until the API server has established them. Running it again changes
nothing. It needs the right to manage CustomResourceDefinitions
(cluster-admin). With --dry-run --output yaml it prints them instead, for
kubectl apply or a GitOps repository; they are also in deploy/crds.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInstallCRDs(cmd.Context(), g, co, &f)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&f.dryRun, "dry-run", false, "change nothing; say what would be installed (with --output yaml: print it)")
	// Not -o: that is the global --option (restic's spelling).
	fs.StringVar(&f.output, "output", "", "print the CRDs in this `format` (yaml)")
	fs.DurationVar(&f.timeout, "timeout", time.Minute, "how long to wait for the CRDs to be established")
	return cmd
}

func runInstallCRDs(ctx context.Context, g *globalOptions, co *clusterOptions, f *installCRDsFlags) error {
	if f.output != "" && f.output != "yaml" {
		return &usageError{cmd: "cairn cluster install-crds", err: fmt.Errorf("unknown output format %q: use --output yaml", f.output)}
	}
	crds, err := volapi.CRDs()
	if err != nil {
		return err
	}
	if f.output == "yaml" {
		for _, c := range crds {
			g.outf("---\n%s", c.YAML)
		}
	}
	if f.dryRun {
		if f.output == "" {
			for _, c := range crds {
				g.printf("would install CRD %s\n", c.Obj.GetName())
			}
		}
		return nil
	}
	cl, err := co.connect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	var names []string
	err = volapi.Install(ctx, cl.Dynamic, func(name string) {
		names = append(names, name)
		if f.output == "" {
			g.printf("CRD %s established\n", name)
		}
	})
	if err != nil {
		return err
	}
	if g.json {
		return g.printJSON(map[string]any{"established": names}, false)
	}
	return nil
}
