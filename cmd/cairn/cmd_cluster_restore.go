package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/hooks"
	"github.com/cairn-backup/cairn/k8s/install"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/modifiers"
	"github.com/cairn-backup/cairn/k8s/restore"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"
)

func init() { clusterSubcommands = append(clusterSubcommands, newClusterRestoreCmd) }

type clusterRestoreFlags struct {
	name                   string
	includeNS, excludeNS   []string
	includeRes, excludeRes []string
	selector               string
	orSelectors            []string
	includeCluster         bool
	nsMaps, scMaps, imgMap []string
	existing               string
	preserveNodePorts      bool
	includeFinished        bool
	includeBootstrapTokens bool
	restoreStatus          []string
	dryRun                 bool
	workers                int
	restoreVolumes         bool
	helperImage            string
	agentNamespace         string
	resourceModifiers      string
}

// defaultHelperImage is the image of the init container restored pods
// wait in: this cairn's release.
func defaultHelperImage() string { return install.DefaultImage(version) }

func newClusterRestoreCmd(g *globalOptions, co *clusterOptions) *cobra.Command {
	var f clusterRestoreFlags
	cmd := &cobra.Command{
		Use:   "restore BACKUP",
		Short: "Restore a cluster backup (or part of it) into the cluster",
		Long: `Restore the Kubernetes objects of a backup into the cluster.

BACKUP is a backup's name (the newest snapshot tagged backup=NAME) or a
snapshot ID. The filters select from what the backup holds; namespaces are
matched before --namespace-mappings renames them. Objects are created in
dependency order: CRDs (then waiting until they are served), namespaces,
storage classes, volumes and claims, RBAC, secrets and config maps, pods,
services, then the rest, and last admission policies and webhooks (so that
they do not judge, or reject, the restore itself).

Objects that exist are left alone and reported (--existing-resource-policy
none) or updated to the backed-up state (update); nothing is ever deleted.
Cluster-scoped objects are restored for a restore without namespace
filters, else only those the restored objects need (PVs of restored claims,
their storage classes, the CRDs of custom resources, the priority and
runtime classes of pods and pod templates, ingress classes, the
ClusterRoleBindings of restored service accounts and the ClusterRoles of
bindings), unless --include-cluster-resources says otherwise;
--exclude-resources keeps them out too. A ClusterRoleBinding whose
service accounts --namespace-mappings moves is restored as a copy named
NAME-NEWNAMESPACE, so that the original keeps binding the original accounts.

Some objects are skipped with a reason in the result: Jobs that completed
or failed and pods that succeeded or failed (restored they would run
again; --include-finished restores them), bootstrap-token Secrets
(--include-bootstrap-tokens restores them), and never mirror pods of static
pods or the APIServices the API server manages itself
(kube-aggregator.kubernetes.io/automanaged).

Services get new cluster IPs. Node ports set by hand (in kubectl's
last-applied configuration, or owned by a field manager) are kept, those
the cluster allocated are not; when another Service holds a kept port, the
cluster allocates another, with a warning (--preserve-nodeports keeps every
node port, and fails instead). Objects keep their field managers
(metadata.managedFields), so that server-side apply tools such as Argo CD
and Flux still own their fields. A default StorageClass stays default only
when the cluster has no other (else it is restored as not default, with a
warning). --restore-status writes are retried when a controller wrote the
object first.

Pod volume data in the backup is restored (--restore-volumes, the
default): the PersistentVolumes of claims with data are not restored, the
claims lose their volumeName and binding annotations and get new volumes
from their (mapped) storage class; every restored pod with such volumes
gets a first init container (` + "`cairn cluster restore-wait`" + ` in
--restore-helper-image) that waits until the node agent has written the data
and a done marker, and the agent gets one VolumeRestore per volume (in
--agent-namespace). PVs without data are restored when their reclaim policy
is Retain; with Delete their claims get new, empty volumes. A claim keeps
its volumeName only when this restore created that PV: an existing PV is
never bound to a restored claim. Data goes back only into pods this restore
creates; pods made by a restored ReplicaSet, StatefulSet or Job later start
on the restored claims, without waiting.

--resource-modifiers takes a file of Velero's resource-modifier rules
(version v1, resourceModifierRules; or the ConfigMap Velero reads them
from) and patches the objects they select with JSON patches, merge patches
or strategic merge patches, after the mappings above. As in Velero, the
rules' namespaces are those of the backup, not the mapped ones. A patch
that fails fails its object; the result counts what each rule changed.

Objects are written at the API version the target prefers when the backup
holds them at it (backups keep objects of multi-version groups at each
served version), else at the version the backup read them at, else at any
version both have; with none in common the object fails, naming both sides'
versions.

Every restored object is labelled cairn.io/backup-name and
cairn.io/restore-name. Each restore (not a dry run) is recorded in the
repository with its options, results and log: ` + "`cairn cluster restores`" + ` lists
them, ` + "`cairn cluster describe-restore NAME`" + ` shows one; a --restore-name that
is taken is refused. Requests are rate-limited by --kube-qps (default 200
per second) and --kube-burst (default 400); raise them for large restores.
The exit code is 0 when every object was restored (or existed), 3 when some
failed, 1 when all failed.`,
		Args: exactArgs(1, "one backup: its name or a snapshot ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var inc *bool
			if cmd.Flags().Changed("include-cluster-resources") {
				inc = &f.includeCluster
			}
			return runClusterRestore(cmd.Context(), g, co, &f, inc, args[0])
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.name, "restore-name", "", "`name` of this restore, put on restored objects (default BACKUP-YYYYMMDDhhmmss)")
	fs.StringSliceVar(&f.includeNS, "include-namespaces", nil, "restore only these namespaces (`globs`, comma-separated; default all)")
	fs.StringSliceVar(&f.excludeNS, "exclude-namespaces", nil, "do not restore these namespaces (`globs`)")
	fs.StringSliceVar(&f.includeRes, "include-resources", nil, "restore only these `resources` (deployments, deploy, Deployment or deployments.apps; comma-separated)")
	fs.StringSliceVar(&f.excludeRes, "exclude-resources", nil, "do not restore these `resources` (comma-separated)")
	fs.StringVarP(&f.selector, "selector", "l", "", "restore only objects matching this label `selector`")
	fs.StringArrayVar(&f.orSelectors, "or-selector", nil, "also restore objects matching this label `selector` (can be repeated)")
	fs.BoolVar(&f.includeCluster, "include-cluster-resources", false, "restore cluster-scoped objects: true = all in the backup, false = none (default: automatic)")
	fs.StringArrayVar(&f.nsMaps, "namespace-mappings", nil, "restore namespaces under new names (`old:new`,...)")
	fs.StringArrayVar(&f.scMaps, "storage-class-mappings", nil, "replace storage classes of volumes and claims (`old:new`,...)")
	fs.StringArrayVar(&f.imgMap, "image-repository-mappings", nil, "replace image registry/repository `prefixes` (old/prefix:new/prefix,...)")
	fs.StringVar(&f.resourceModifiers, "resource-modifiers", "", "patch restored objects by the Velero resource-modifier rules in this `file` (YAML or JSON, or the ConfigMap holding them)")
	fs.StringVar(&f.existing, "existing-resource-policy", restore.ExistingNone, "`policy` for objects that exist: none (leave and report them) or update")
	fs.BoolVar(&f.preserveNodePorts, "preserve-nodeports", false, "keep every node port of services, also those the cluster allocated (default: only those set by hand)")
	fs.BoolVar(&f.includeFinished, "include-finished", false, "restore completed or failed Jobs and finished pods too (default: skipped, as they would run again)")
	fs.BoolVar(&f.includeBootstrapTokens, "include-bootstrap-tokens", false, "restore bootstrap-token Secrets too (default: skipped)")
	fs.StringSliceVar(&f.restoreStatus, "restore-status", nil, "restore the status of these `resources` too")
	fs.BoolVar(&f.dryRun, "dry-run", false, "change nothing: let the API server validate and print what would be done")
	fs.IntVar(&f.workers, "workers", 8, "objects restored at once")
	fs.BoolVar(&f.restoreVolumes, "restore-volumes", true, "restore pod volume data in the backup (false: manifests only)")
	fs.StringVar(&f.helperImage, "restore-helper-image", defaultHelperImage(), "`image` of the init container restored pods wait for their data in")
	fs.StringVar(&f.agentNamespace, "agent-namespace", defaultAgentNamespace, "`namespace` of the node agents, where the VolumeRestores are created")
	return cmd
}

// restoreOptions turns the flags into library options; mistakes are
// reported before anything is opened.
func (f *clusterRestoreFlags) restoreOptions(inc *bool) (restore.RestoreOptions, error) {
	o := restore.RestoreOptions{
		Name: f.name, IncludeNamespaces: f.includeNS, ExcludeNamespaces: f.excludeNS,
		IncludeResources: f.includeRes, ExcludeResources: f.excludeRes,
		Selector: f.selector, OrSelectors: f.orSelectors, IncludeClusterResources: inc,
		ExistingResourcePolicy: f.existing, PreserveNodePorts: f.preserveNodePorts,
		IncludeFinished: f.includeFinished, IncludeBootstrapTokens: f.includeBootstrapTokens,
		RestoreStatus: f.restoreStatus, DryRun: f.dryRun, Workers: f.workers,
	}
	var err error
	if o.NamespaceMappings, err = restore.ParseMappings("namespace-mappings", f.nsMaps); err != nil {
		return o, err
	}
	if o.StorageClassMappings, err = restore.ParseMappings("storage-class-mappings", f.scMaps); err != nil {
		return o, err
	}
	if o.ImageMappings, err = restore.ParseImageMappings(f.imgMap); err != nil {
		return o, err
	}
	if f.resourceModifiers != "" {
		if o.Modifiers, err = modifiers.Load(f.resourceModifiers); err != nil {
			return o, fmt.Errorf("--resource-modifiers: %w", err)
		}
	}
	if f.existing != restore.ExistingNone && f.existing != restore.ExistingUpdate {
		return o, fmt.Errorf("--existing-resource-policy %q: use %s or %s", f.existing, restore.ExistingNone, restore.ExistingUpdate)
	}
	if f.workers < 1 || f.workers > 64 {
		return o, fmt.Errorf("--workers %d is out of range: use 1 to 64", f.workers)
	}
	if f.restoreVolumes {
		if f.helperImage == "" || strings.ContainsAny(f.helperImage, " \t\n") {
			return o, fmt.Errorf("--restore-helper-image %q: give an image reference", f.helperImage)
		}
		if errs := validation.IsDNS1123Label(f.agentNamespace); len(errs) > 0 {
			return o, fmt.Errorf("--agent-namespace %q: %s", f.agentNamespace, strings.Join(errs, "; "))
		}
		o.VolumeData = &restore.VolumeDataOptions{HelperImage: f.helperImage, AgentNamespace: f.agentNamespace}
	}
	return o, nil
}

func runClusterRestore(ctx context.Context, g *globalOptions, co *clusterOptions, f *clusterRestoreFlags, inc *bool, spec string) error {
	opts, err := f.restoreOptions(inc)
	if err != nil {
		return err
	}
	rec, err := newRestoreRecorder(g, opts.DryRun)
	if err != nil {
		return err
	}
	r, release, err := g.openLocked(ctx, false)
	if err != nil {
		return err
	}
	defer release()
	if opts.VolumeData != nil {
		opts.VolumeData.RepositoryLocation = r.Backend().Location()
	}
	sn, err := catalog.ResolveBackup(ctx, r, spec)
	if err != nil {
		return err
	}
	if err := r.LoadIndex(ctx); err != nil {
		return err
	}
	src, err := restore.OpenBackupSource(ctx, r, sn)
	if err != nil {
		return err
	}
	cl, err := co.connect()
	if err != nil {
		return err
	}
	// The restored pods' post.hook.restore.… commands run through pods/exec.
	if opts.Hooks, err = hooks.NewExecutor(cl.Config); err != nil {
		return err
	}
	backup := catalog.BackupName(sn, src.Info)
	if opts.Name == "" {
		opts.Name = restore.DefaultRestoreName(backup, time.Now())
	}
	if err := rec.checkName(ctx, r, &opts, backup, f.name == ""); err != nil {
		return err
	}
	from := sn.Hostname
	if src.Info != nil && src.Info.Cluster != "" {
		from = src.Info.Cluster
	}
	dry := ""
	if opts.DryRun {
		dry = " (dry run)"
	}
	g.printf("restoring backup %s (snapshot %s of cluster %s, %s) into cluster %s as %s%s\n",
		backup, sn.ID.Str(), from, sn.Time.Local().Format("2006-01-02 15:04:05"), cl.Cluster, opts.Name, dry)

	progress := &snapshot.Progress{}
	opts.OnItem = func(it restore.ItemResult) {
		progress.Files.Add(1)
		progress.SetCurrent(it.Resource + " " + itemPath(it))
		if it.Action == restore.ActionFailed {
			progress.Errors.Add(1)
		}
		g.verbosef(1, "%-14s %s %s%s\n", it.Action, it.Resource, itemPath(it), reasonSuffix(it.Reason))
	}
	rec.track(&opts)
	stop := g.startProgress(progress, "objects")
	res, err := restore.RestoreFrom(ctx, src, cl, opts)
	stop()
	if res == nil {
		return err
	}
	if g.json {
		if jerr := g.printJSON(res, false); jerr != nil {
			return jerr
		}
	} else {
		printRestoreSummary(g, res)
	}
	rec.save(ctx, r, &opts, res, err, from)
	if err != nil {
		return fmt.Errorf("restore %s: %w", res.Name, err)
	}
	return restorePhaseError(res)
}

// restorePhaseError maps the phase to the exit code.
func restorePhaseError(res *restore.RestoreResult) error {
	failed := res.Total(restore.ActionFailed)
	switch res.Phase {
	case layout.PhaseCompleted:
		return nil
	case layout.PhasePartiallyFailed:
		if failed == 0 && len(res.Errors) > 0 {
			return &exitError{code: exitPartial, err: fmt.Errorf("restore %s partially failed: %s", res.Name, res.Errors[0])}
		}
		return &exitError{code: exitPartial, err: fmt.Errorf("restore %s partially failed: %s could not be restored (see the list of failed objects)",
			res.Name, plural(failed, "object"))}
	default:
		msg := "nothing could be restored"
		if len(res.Errors) > 0 {
			msg = res.Errors[0]
			if len(res.Errors) > 1 {
				msg += fmt.Sprintf(" (and %d more errors)", len(res.Errors)-1)
			}
		}
		return &exitError{code: exitFailure, err: errors.New("restore " + res.Name + " failed: " + msg)}
	}
}

func itemPath(it restore.ItemResult) string {
	if it.Namespace == "" {
		return it.Name
	}
	return it.Namespace + "/" + it.Name
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

// restoreColumns are the actions shown as table columns.
var restoreColumns = []struct{ action, title string }{
	{restore.ActionCreated, "Created"},
	{restore.ActionUpdated, "Updated"},
	{restore.ActionSkippedExists, "Existed"},
	{restore.ActionFailed, "Failed"},
}

// restoreTable is the summary: one row per resource with listed items.
func restoreTable(res *restore.RestoreResult) (header []string, rows [][]string) {
	header = []string{"Resource"}
	for _, c := range restoreColumns {
		header = append(header, c.title)
	}
	var resources []string
	for r, counts := range res.Counts {
		if len(counts) > 1 || counts[restore.ActionSkipped] == 0 {
			resources = append(resources, r)
		}
	}
	slices.SortFunc(resources, restore.CompareRestoreOrder)
	for _, r := range resources {
		row := []string{r}
		for _, c := range restoreColumns {
			row = append(row, strconv.Itoa(res.Counts[r][c.action]))
		}
		rows = append(rows, row)
	}
	return header, rows
}

func printRestoreSummary(g *globalOptions, res *restore.RestoreResult) {
	if g.quiet {
		return
	}
	header, rows := restoreTable(res)
	if len(rows) > 0 {
		printTable(g, header, rows)
	}
	g.printf("%d created, %d updated, %d existed, %d failed; %d skipped (filtered out or never restored) in %s\n",
		res.Total(restore.ActionCreated), res.Total(restore.ActionUpdated), res.Total(restore.ActionSkippedExists),
		res.Total(restore.ActionFailed), res.Skipped, formatDuration(res.End.Sub(res.Start)))
	if n := res.Total(restore.ActionFailed); n > 0 {
		g.printf("failed:\n")
		for _, it := range res.Items {
			if it.Action == restore.ActionFailed {
				g.printf("  %s %s: %s\n", it.Resource, itemPath(it), it.Reason)
			}
		}
	}
	if line := modifierSummary(res.Modifiers); line != "" {
		g.printf("%s\n", line)
	}
	if line := hooksLine(res.Hooks); line != "" {
		g.printf("%s\n", line)
	}
	for _, w := range res.Warnings {
		g.warnf("warning: %s\n", w)
	}
	if n := res.Counts["volumerestores.cairn.io"][restore.ActionCreated]; n > 0 && !res.DryRun {
		g.printf("%s handed to the node agents; the pods wait for their data (kubectl get volumerestores -A -l cairn.io/restore-name=%s)\n",
			plural(n, "volume"), res.Name)
	}
	if res.DryRun {
		g.printf("dry run: nothing was changed; the counts say what would have been done\n")
	}
	g.printf("restore %s: %s\n", res.Name, res.Phase)
}

// modifierSummary says how many objects each resource-modifier rule
// changed, or "" without rules.
func modifierSummary(uses []restore.ModifierUse) string {
	if len(uses) == 0 {
		return ""
	}
	total, parts := 0, make([]string, 0, len(uses))
	for _, u := range uses {
		total += u.Applied
		parts = append(parts, fmt.Sprintf("%s: %d", u.Rule, u.Applied))
	}
	return fmt.Sprintf("resource modifiers changed %s (%s)", plural(total, "object"), strings.Join(parts, ", "))
}
