package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/backup"
	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/hooks"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/podvolumes"
	"github.com/cairn-backup/cairn/k8s/schedule"
	"github.com/cairn-backup/cairn/k8s/volumes"
	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
)

func init() {
	clusterSubcommands = append(clusterSubcommands,
		newClusterBackupCmd, newClusterBackupsCmd, newClusterDescribeCmd,
		newClusterLogsCmd, newClusterDownloadCmd, newClusterDeleteCmd)
}

type clusterBackupFlags struct {
	includeNamespaces, excludeNamespaces []string
	includeResources, excludeResources   []string
	includeCluster                       bool
	selector                             string
	orSelectors                          []string
	ttl                                  string
	clusterName                          string
	wait                                 bool
	scheduleName                         string
	volumes                              volumeFlags
}

func newClusterBackupCmd(g *globalOptions, co *clusterOptions) *cobra.Command {
	var f clusterBackupFlags
	cmd := &cobra.Command{
		Use:   "backup [flags] NAME",
		Short: "Back up the cluster's resources into one snapshot",
		Long: `Back up the resources of the cluster (or of some namespaces) into one
snapshot tagged backup=NAME.

Every resource the API server can list is read at its preferred version,
custom resources included (and again at every other version its group
serves, under /resource-versions); events, nodes, endpoint slices, node
leases and metrics are never backed up, nor objects being deleted, nor
objects labelled cairn.io/exclude-from-backup=true (or Velero's
velero.io/exclude-from-backup=true) or the objects of a namespace so
labelled. The claims and service accounts the selected pods use come too.
Cluster-scoped objects are all backed up when all namespaces are; with a
namespace filter, only those the selected objects need (their volumes,
storage classes, CRDs, cluster roles, the cluster role bindings of their
service accounts, ingress and priority classes) -- unless
--include-cluster-resources says otherwise. The backup log says why each
needed object was added.

The backup runs until done (as Velero's --wait). If some resources could not
be read, the backup is still saved, its phase is PartiallyFailed and the exit
code is 3; ` + "`cairn cluster logs NAME`" + ` tells what happened.

Pod volume data: the volumes a pod's annotation backup.cairn.io/backup-volumes
(or Velero's backup.velero.io/backup-volumes) names are copied -- or, with
--default-volumes-to-fs-backup, all but those named in
backup.cairn.io/backup-volumes-excludes (hostPath, secret, configMap,
projected and downwardAPI volumes never are). The node agents (cairn cluster
agent) copy them; the backup waits up to --volume-timeout and takes their
trees into its snapshot at /volumes/<namespace>/<pod>/<volume>. A volume
that could not be copied makes the backup PartiallyFailed.`,
		Example: `  cairn cluster backup nightly
  cairn cluster backup shop --include-namespaces shop,shop-db --ttl 30d
  cairn cluster backup web -l app=web --exclude-resources secrets
  cairn cluster backup --schedule-name nightly   # as a schedule runs it`,
		Args: func(cmd *cobra.Command, args []string) error {
			// A schedule's CronJob names the schedule, not the backup.
			if f.scheduleName != "" {
				return exactArgs(0, "no backup name with --schedule-name (the schedule names it)")(cmd, args)
			}
			return exactArgs(1, "the backup's name")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if f.scheduleName != "" {
				if err := schedule.ValidateName(f.scheduleName); err != nil {
					return fmt.Errorf("--schedule-name: %w", err)
				}
				name = schedule.BackupName(f.scheduleName, time.Now())
			} else {
				name = args[0]
			}
			return runClusterBackup(cmd, g, co, &f, name)
		},
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&f.includeNamespaces, "include-namespaces", nil, "back up only these namespaces (`globs`, comma-separated; default all)")
	fs.StringSliceVar(&f.excludeNamespaces, "exclude-namespaces", nil, "do not back up these namespaces (`globs`, comma-separated)")
	fs.StringSliceVar(&f.includeResources, "include-resources", nil, "back up only these `resources` (deployments, deploy, Deployment or deployments.apps; comma-separated)")
	fs.StringSliceVar(&f.excludeResources, "exclude-resources", nil, "do not back up these `resources` (comma-separated)")
	fs.BoolVar(&f.includeCluster, "include-cluster-resources", false, "back up all cluster-scoped objects (=false: none but the namespaces; default: all only when all namespaces are backed up)")
	fs.StringVarP(&f.selector, "selector", "l", "", "back up only objects matching this label `selector`")
	fs.StringArrayVar(&f.orSelectors, "or-selector", nil, "also back up objects matching this label `selector` (can be repeated; an object matching any selector is backed up)")
	fs.StringVar(&f.ttl, "ttl", "720h", "the backup expires after this `duration` (e.g. 720h, 30d; 0 = never)")
	fs.StringVar(&f.clusterName, "cluster-name", "", "record this cluster `name` (default: the kubeconfig context's cluster)")
	fs.StringVar(&f.scheduleName, "schedule-name", "", "run as the schedule `NAME`: the backup is NAME-<UTC YYYYMMDDhhmmss of now>, tagged schedule=NAME (what a schedule's CronJob runs; no NAME argument)")
	fs.BoolVar(&f.wait, "wait", true, "wait until the backup is done (always: cairn backs up synchronously)")
	f.volumes.addFlags(cmd)
	return cmd
}

// clusterBackupJSON is `cluster backup --json`.
type clusterBackupJSON struct {
	Name            string         `json:"name"`
	SnapshotID      string         `json:"snapshot_id"`
	Cluster         string         `json:"cluster"`
	Phase           string         `json:"phase"`
	Items           int            `json:"items"`
	ItemsByResource map[string]int `json:"items_by_resource"`
	Warnings        []string       `json:"warnings"`
	Errors          []string       `json:"errors"`
	Start           time.Time      `json:"start"`
	End             time.Time      `json:"end"`
	Duration        float64        `json:"duration"` // seconds
	Expires         *time.Time     `json:"expires,omitempty"`
	Bytes           uint64         `json:"bytes"`      // manifests
	DataAdded       uint64         `json:"data_added"` // new data in the repository
	// Volumes are the pod volumes the backup was to copy, as backup.json
	// lists them.
	Volumes []layout.VolumeInfo `json:"volumes,omitempty"`
	// Hooks are the pods' backup hooks that ran, as backup.json has them.
	Hooks []layout.HookResult `json:"hooks,omitempty"`
}

func runClusterBackup(cmd *cobra.Command, g *globalOptions, co *clusterOptions, f *clusterBackupFlags, name string) error {
	ctx := cmd.Context()
	if err := g.declareWrite("cluster backup", appendLock); err != nil {
		return err
	}
	if !f.wait {
		return errors.New("--wait=false is not supported: cairn backs up synchronously (run it in the background, or use a schedule)")
	}
	if err := backup.ValidateBackupName(name); err != nil {
		return err
	}
	ttl, err := retention.ParseTTL(f.ttl)
	if err != nil {
		return fmt.Errorf("--ttl: %w", err)
	}
	spec := layout.BackupSpec{
		IncludeNamespaces: f.includeNamespaces, ExcludeNamespaces: f.excludeNamespaces,
		IncludeResources: f.includeResources, ExcludeResources: f.excludeResources,
		Selector: f.selector, OrSelectors: f.orSelectors, Schedule: f.scheduleName,
	}
	if cmd.Flags().Changed("include-cluster-resources") {
		spec.IncludeClusterResources = &f.includeCluster
	}
	cl, err := co.connect()
	if err != nil {
		return err
	}
	r, release, err := g.openWithIndex(ctx)
	if err != nil {
		return err
	}
	defer release()
	progress := &snapshot.Progress{}
	opts := backup.BackupOptions{
		Name: name, Cluster: f.clusterName, Spec: spec, TTL: ttl,
		CairnVersion: version, Progress: progress,
		Log: func(line string) { g.verbosef(1, "%s\n", line) },
	}
	if f.volumes.enabled {
		opts.Volumes = f.volumes.hook(cl, r, name, ttl)
		opts.CopiesVolumes = podvolumes.CopiesVolumes(volumes.Options{DefaultToFSBackup: f.volumes.defaultToFS})
	}
	// The pods' pre/post backup hook annotations run through pods/exec.
	if opts.Hooks, err = hooks.NewExecutor(cl.Config); err != nil {
		return err
	}
	stop := g.startProgress(progress, "objects")
	res, err := backup.Backup(ctx, cl, r, opts)
	stop()
	if err != nil {
		return err
	}
	return reportClusterBackup(g, res)
}

func reportClusterBackup(g *globalOptions, res *backup.BackupResult) error {
	info, sn := res.Info, res.Snapshot
	if g.json {
		out := clusterBackupJSON{
			Name: info.Name, SnapshotID: sn.ID.String(), Cluster: info.Cluster, Phase: info.Phase,
			Items: info.TotalItems, ItemsByResource: info.Items,
			Warnings: nonNil(info.Warnings), Errors: nonNil(info.Errors),
			Start: info.Start, End: info.End, Duration: info.End.Sub(info.Start).Seconds(),
			Expires: info.Expires, Bytes: res.Bytes, Volumes: info.Volumes, Hooks: info.Hooks,
		}
		if sn.Summary != nil {
			out.DataAdded = sn.Summary.DataAdded
		}
		if err := g.printJSON(out, false); err != nil {
			return err
		}
	} else {
		for _, w := range info.Warnings {
			g.warnf("warning: %s\n", w)
		}
		for _, e := range info.Errors {
			g.warnf("error: %s\n", e)
		}
		g.printf("backup %s of cluster %s: %s\n", info.Name, info.Cluster, info.Phase)
		added := ""
		if sn.Summary != nil {
			added = fmt.Sprintf(", %s added to the repository", formatBytes(sn.Summary.DataAdded))
		}
		g.printf("%s of %s (%s of manifests%s) in %s\n", plural(info.TotalItems, "object"), plural(len(info.Items), "resource"),
			formatBytes(res.Bytes), added, formatDuration(info.End.Sub(info.Start)))
		exp := "never expires"
		if info.Expires != nil {
			exp = "expires " + info.Expires.Local().Format("2006-01-02 15:04:05")
		}
		if line := volumesLine(info.Volumes); line != "" {
			g.printf("%s\n", line)
		}
		if line := hooksLine(info.Hooks); line != "" {
			g.printf("%s\n", line)
		}
		g.printf("snapshot %s saved; %s\n", sn.ID.Str(), exp)
	}
	if info.Phase != layout.PhaseCompleted {
		return &exitError{code: exitPartial, err: fmt.Errorf(
			"backup %s saved as snapshot %s, but only in part (%s, %s): some objects or volumes are missing; `cairn cluster logs %s` tells more",
			info.Name, sn.ID.Str(), info.Phase, plural(len(info.Errors), "error"), info.Name)}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// openBackup opens the repository with its index and finds a backup by
// name (or snapshot ID).
func openBackup(ctx context.Context, g *globalOptions, name string) (*backupHandle, error) {
	r, err := g.openRepo(ctx)
	if err != nil {
		return nil, err
	}
	// The backup's snapshot first, then the index (design.rst's read order).
	e, err := catalog.FindBackupEntry(ctx, r, name)
	if err != nil {
		r.Close()
		return nil, err
	}
	if err := r.LoadIndex(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return &backupHandle{r: r, entry: e}, nil
}

// onBackup makes a RunE that opens the backup its first argument names,
// runs fn and closes the repository.
func onBackup(g *globalOptions, fn func(ctx context.Context, b *backupHandle) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		b, err := openBackup(cmd.Context(), g, args[0])
		if err != nil {
			return err
		}
		defer b.r.Close()
		return fn(cmd.Context(), b)
	}
}

// volumesLine sums up the pod volumes of a backup, "" when there are none.
func volumesLine(vols []layout.VolumeInfo) string {
	if len(vols) == 0 {
		return ""
	}
	var done, failed, skipped int
	var files, bytes, added uint64
	for _, v := range vols {
		switch v.Result {
		case layout.VolumeFailed:
			failed++
		case layout.VolumeSkipped:
			skipped++
		default:
			done++
			files, bytes, added = files+v.Files, bytes+v.Bytes, added+v.BytesAdded
		}
	}
	line := fmt.Sprintf("%s copied (%s, %s, %s new)", plural(done, "pod volume"), plural(int(files), "file"), formatBytes(bytes), formatBytes(added))
	if failed > 0 {
		line += fmt.Sprintf(", %d failed", failed)
	}
	if skipped > 0 {
		line += fmt.Sprintf(", %d skipped", skipped)
	}
	return line
}

// hooksLine counts the hooks by result: "hooks: 2 Succeeded, 1 Failed".
func hooksLine(hs []layout.HookResult) string {
	if len(hs) == 0 {
		return ""
	}
	counts := map[string]int{}
	var order []string
	for _, h := range hs {
		if counts[h.Result] == 0 {
			order = append(order, h.Result)
		}
		counts[h.Result]++
	}
	parts := make([]string, len(order))
	for i, r := range order {
		parts[i] = fmt.Sprintf("%d %s", counts[r], r)
	}
	return "hooks: " + strings.Join(parts, ", ")
}

// hookSummary is one hook's line in describe: "<ns>/<pod> <phase>
// (<container>): <result>[: <error>]".
func hookSummary(h layout.HookResult) string {
	line := fmt.Sprintf("%s/%s %s (%s): %s", h.Namespace, h.Pod, h.Phase, h.Container, h.Result)
	if h.Error != "" {
		line += ": " + h.Error
	}
	return line
}
