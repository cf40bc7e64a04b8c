package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/install"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/maintenance"
	"github.com/cairn-backup/cairn/k8s/schedule"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func init() { clusterSubcommands = append(clusterSubcommands, newClusterMaintenanceCmd) }

func newClusterMaintenanceCmd(g *globalOptions, co *clusterOptions) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use:   "maintenance",
		Short: "Forget expired backups, apply each schedule's retention, prune; on a schedule",
		Long: `Repository maintenance for the backups of a cluster:

  run       forget what has expired (--ttl) and what each schedule's
            retention policy (schedule create --keep-*) does not keep, with
            the pod volume snapshots of the backups forgotten, then prune;
            under an exclusive lock; the run is recorded in the repository
  create    a CronJob in cairn's namespace that runs ` + "`maintenance run`" + ` (daily
            at 03:00 UTC unless --schedule says otherwise)
  delete    remove that CronJob
  history   the recorded runs: what was forgotten and the space freed`,
	}
	cmd.PersistentFlags().StringVar(&ns, "namespace", install.DefaultNamespace, "the `namespace` cairn was installed into (where the schedules are)")
	cmd.AddCommand(newMaintenanceRunCmd(g, co, &ns), newMaintenanceCreateCmd(g, co, &ns), newMaintenanceDeleteCmd(g, co, &ns),
		newMaintenanceHistoryCmd(g))
	return cmd
}

// maintenanceOptions are the run's flags that `maintenance create`
// takes too and passes on to the run.
type maintenanceOptions struct {
	keepRecords int
	noPrune     bool
	pf          pruneFlags
}

func (o *maintenanceOptions) add(fs *pflag.FlagSet) {
	fs.IntVar(&o.keepRecords, "keep-records", maintenance.DefaultKeepRecords, "keep this `many` maintenance records (0: all)")
	fs.BoolVar(&o.noPrune, "no-prune", false, "forget, but leave the data for a later prune")
	o.pf.add(fs)
}

func (o *maintenanceOptions) check() error {
	if _, err := o.pf.options(0); err != nil {
		return err
	}
	if o.keepRecords < 0 {
		return errors.New("--keep-records must be 0 (all) or more")
	}
	return nil
}

// args are the options set on fs, as the run's command-line words.
func (o *maintenanceOptions) args(fs *pflag.FlagSet) []string {
	own := pflag.NewFlagSet("maintenance", pflag.ContinueOnError)
	(&maintenanceOptions{}).add(own)
	var out []string
	own.VisitAll(func(fl *pflag.Flag) {
		if set := fs.Lookup(fl.Name); set != nil && set.Changed {
			out = append(out, "--"+fl.Name+"="+set.Value.String())
		}
	})
	return out
}

type maintenanceRunFlags struct {
	maintenanceOptions
	dryRun      bool
	clusterName string
}

func newMaintenanceRunCmd(g *globalOptions, co *clusterOptions, ns *string) *cobra.Command {
	var f maintenanceRunFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Forget expired backups and what the schedules' policies do not keep, then prune",
		Long: `Forget, in this order: every snapshot whose time to live ran out; for
each schedule in --namespace with a retention policy, the backups the
policy does not keep (never the schedule's newest Completed backup: only
its TTL can remove that); the pod volume snapshots of the backups
forgotten, and those of backups the repository does not hold that are
older than a day (left by a backup that died); maintenance records beyond
--keep-records. Then prune (unless --no-prune), and save a record of the
run in the repository (cairn cluster maintenance history). All of it under
an exclusive lock: backups wait (--retry-lock) or fail while it runs.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMaintenance(cmd.Context(), g, co, *ns, &f)
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&f.dryRun, "dry-run", "n", false, "only print what would be forgotten; change nothing, record nothing")
	fs.StringVar(&f.clusterName, "cluster-name", "", "the `name` the record gives the cluster (default: the kubeconfig context's cluster)")
	f.add(fs)
	return cmd
}

// schedulePolicies reads the retention policy of each schedule in ns. A
// schedule whose policy cannot be understood is skipped with a warning:
// its backups are kept, never forgotten by half a policy.
func schedulePolicies(ctx context.Context, cl *kube.Clients, ns string) (map[string]retention.Policy, []string, error) {
	cjs, err := cl.Dynamic.Resource(cronJobsGVR).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: schedule.LabelSchedule})
	if err != nil {
		return nil, nil, fmt.Errorf("list the schedules in namespace %s: %w", ns, err)
	}
	policies := map[string]retention.Policy{}
	var warnings []string
	for _, cj := range cjs.Items {
		spec, ok := schedule.ReadSpec(&cj)
		if !ok {
			warnings = append(warnings, fmt.Sprintf("schedule %s: its %s annotation cannot be read; its backups are kept", cj.GetName(), schedule.AnnotationSpec))
			continue
		}
		if len(spec.Retention) == 0 {
			continue
		}
		p, err := schedule.RetentionPolicy(spec.Retention)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("schedule %s: %v; its backups are kept", cj.GetName(), err))
			continue
		}
		policies[cj.GetName()] = p
	}
	return policies, warnings, nil
}

func runMaintenance(ctx context.Context, g *globalOptions, co *clusterOptions, ns string, f *maintenanceRunFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	if !f.dryRun {
		if err := g.declareWrite("cluster maintenance run", exclusiveLock); err != nil {
			return err
		}
	}
	cl, err := co.connect()
	if err != nil {
		return err
	}
	policies, warnings, err := schedulePolicies(ctx, cl, ns)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		g.warnf("warning: %s\n", w)
	}
	r, release, err := g.openLocked(ctx, !f.dryRun)
	if err != nil {
		return err
	}
	defer release()
	start := time.Now()
	rec := &maintenance.Record{Name: "maintenance-" + start.UTC().Format(schedule.TimestampLayout), Cluster: f.clusterName,
		CairnVersion: version, Start: start, Warnings: warnings}
	if rec.Cluster == "" {
		rec.Cluster = cl.Cluster
	}
	unreadable := &damageLog{g: g}
	sns, err := snapshot.ListSnapshots(ctx, r, snapshot.Filter{}, func(err error) {
		unreadable.snapshot(err)
		rec.Warnings = append(rec.Warnings, err.Error()+"; left alone")
	})
	if err != nil {
		return err
	}
	rec.Name = uniqueRecordName(rec.Name, sns)
	if err := r.LoadIndex(ctx); err != nil {
		return err
	}
	completed := scheduledPhases(ctx, r, sns, policies)
	plan := maintenance.MakePlan(maintenance.Input{Snapshots: sns, Policies: policies, Now: start,
		Completed: func(id string) bool { return completed[id] }, KeepRecords: f.keepRecords, OrphanAge: maintenance.DefaultOrphanAge})
	rec.Schedules, rec.Forgotten = plan.Schedules, plan.Forget
	for _, s := range plan.Schedules {
		g.printf("schedule %s: %s: %d backups, %d kept, %d forgotten\n", s.Schedule, s.Policy, s.Backups, s.Kept, s.Forgotten)
		if s.Protected != "" {
			g.printf("  kept %s: the schedule's newest completed backup\n", s.Protected)
		}
	}
	for _, fg := range plan.Forget {
		g.printf("forget %s\n", fg.Describe())
	}
	if f.dryRun {
		if g.json {
			rec.End = time.Now()
			return g.printJSON(rec, false)
		}
		g.printf("dry run: would forget %s\n", plural(len(plan.Forget), "snapshot"))
		return nil
	}
	runErr := forgetAndPrune(ctx, g, r, f, rec)
	rec.End = time.Now()
	if runErr != nil {
		rec.Error = runErr.Error()
	}
	// The record is written even when the run failed part-way: history
	// shows what was done and why it stopped.
	sn, err := maintenance.Save(ctx, r, rec)
	if err != nil {
		return errors.Join(runErr, err)
	}
	if g.json {
		if err := g.printJSON(rec, false); err != nil {
			return err
		}
	} else {
		g.printf("maintenance %s recorded (snapshot %s)\n", rec.Name, sn.ID.Str())
	}
	if runErr != nil {
		return runErr
	}
	return unreadable.result(nil)
}

// forgetAndPrune removes the snapshot files of rec.Forgotten and prunes.
func forgetAndPrune(ctx context.Context, g *globalOptions, r *repo.Repository, f *maintenanceRunFlags, rec *maintenance.Record) error {
	for i, fg := range rec.Forgotten {
		if err := r.Backend().Remove(ctx, repo.Handle{Type: repo.SnapshotFile, Name: fg.ID}); err != nil && !repo.IsNotExist(err) {
			rec.Forgotten = rec.Forgotten[:i]
			return fmt.Errorf("remove snapshot %s: %w (%d removed before)", fg.ID[:8], err, i)
		}
	}
	g.printf("forgot %s\n", plural(len(rec.Forgotten), "snapshot"))
	if f.noPrune {
		return nil
	}
	g.printf("\n")
	out, err := prune(ctx, g, r, &f.pf, false, nil)
	if err != nil {
		return err
	}
	ps := &maintenance.PruneSummary{SizeBefore: out.TotalSize, SizeAfter: out.TotalSize, UnusedAfter: out.UnusedAfter}
	if res := out.Result; res != nil {
		ps.SizeAfter = out.KeepSize + res.NewPackSize
		ps.PacksRemoved, ps.PacksWritten = res.PacksRemoved, res.NewPacks
	}
	ps.Freed = ps.SizeBefore - ps.SizeAfter
	rec.Prune = ps
	return nil
}

// scheduledPhases reads backup.json of the backups of schedules with a
// policy: the newest Completed one of each is protected.
func scheduledPhases(ctx context.Context, r *repo.Repository, sns []*snapshot.Snapshot, policies map[string]retention.Policy) map[string]bool {
	var entries []*catalog.BackupEntry
	for _, sn := range sns {
		if e, ok := catalog.NewBackupEntry(sn); ok {
			if _, has := policies[e.Schedule]; has && e.Schedule != "" {
				entries = append(entries, e)
			}
		}
	}
	catalog.LoadBackupInfos(ctx, r, entries)
	out := map[string]bool{}
	for _, e := range entries {
		out[e.Snapshot.ID.String()] = e.Info != nil && e.Info.Phase == layout.PhaseCompleted
	}
	return out
}

func newMaintenanceHistoryCmd(g *globalOptions) *cobra.Command {
	var last int
	cmd := &cobra.Command{
		Use:   "history [NAME]",
		Short: "List the recorded maintenance runs, or show one run's log",
		Long: `List the maintenance runs recorded in the repository, newest first: when,
how long, what was forgotten, the space prune freed and the repository's
size after. With a run's NAME (or "latest"), print its log: every snapshot
forgotten and why.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, release, err := g.openLocked(ctx, false)
			if err != nil {
				return err
			}
			defer release()
			unreadable := &damageLog{g: g}
			entries, err := maintenance.List(ctx, r, unreadable.snapshot)
			if err != nil {
				return err
			}
			if err := r.LoadIndex(ctx); err != nil {
				return err
			}
			slices.Reverse(entries) // newest first
			if len(args) == 1 {
				return printMaintenanceLog(ctx, g, r, entries, args[0])
			}
			if last > 0 && len(entries) > last {
				entries = entries[:last]
			}
			maintenance.Load(ctx, r, entries)
			if g.json {
				out := []maintenanceHistoryJSON{}
				for _, e := range entries {
					out = append(out, maintenanceHistoryJSON{Name: e.Name, SnapshotID: e.Snapshot.ID.String(), Time: e.Snapshot.Time, Record: e.Record, Problem: errString(e.Err)})
				}
				return g.printJSON(out, false)
			}
			printMaintenanceTable(g, entries)
			return unreadable.result(nil)
		},
	}
	cmd.Flags().IntVar(&last, "last", 0, "show only the `n` newest runs")
	return cmd
}

type maintenanceHistoryJSON struct {
	Name       string              `json:"name"`
	SnapshotID string              `json:"snapshot_id"`
	Time       time.Time           `json:"time"`
	Record     *maintenance.Record `json:"record,omitempty"`
	Problem    string              `json:"problem,omitempty"`
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func printMaintenanceTable(g *globalOptions, entries []*maintenance.Entry) {
	if len(entries) == 0 {
		g.printf("no maintenance runs recorded (cairn cluster maintenance create schedules them)\n")
		return
	}
	esc := termEscaper(g)
	var rows [][]string
	for _, e := range entries {
		rec := e.Record
		if rec == nil {
			rows = append(rows, []string{esc(e.Name), e.Snapshot.Time.Local().Format("2006-01-02 15:04:05"), "", "", "", "", "unreadable: " + esc(errString(e.Err))})
			continue
		}
		freed, after := "-", "-"
		if p := rec.Prune; p != nil && !p.Skipped {
			freed, after = formatBytes(uint64(max(p.Freed, 0))), formatBytes(uint64(max(p.SizeAfter, 0)))
		}
		result := "ok"
		if rec.Error != "" {
			result = "failed: " + esc(rec.Error)
		}
		rows = append(rows, []string{esc(e.Name), rec.Start.Local().Format("2006-01-02 15:04:05"), rec.End.Sub(rec.Start).Round(time.Second).String(),
			fmt.Sprint(len(rec.Forgotten)), freed, after, result})
	}
	printTable(g, []string{"NAME", "STARTED", "DURATION", "FORGOTTEN", "FREED", "SIZE AFTER", "RESULT"}, rows)
}

func printMaintenanceLog(ctx context.Context, g *globalOptions, r *repo.Repository, entries []*maintenance.Entry, name string) error {
	i := slices.IndexFunc(entries, func(e *maintenance.Entry) bool {
		return e.Name == name || (name == "latest") || strings.HasPrefix(e.Snapshot.ID.String(), name)
	})
	if i < 0 {
		return fmt.Errorf("no maintenance run %q is recorded (`cairn cluster maintenance history` lists them)", name)
	}
	text, err := maintenance.LogOf(ctx, r, entries[i].Snapshot)
	if err != nil {
		return err
	}
	esc := termEscaper(g)
	for line := range strings.Lines(text) {
		g.outf("%s\n", esc(strings.TrimSuffix(line, "\n")))
	}
	return nil
}

type maintenanceCreateFlags struct {
	maintenanceOptions
	schedule, image, pullPolicy, serviceAccount, secret string
	dryRun                                              bool
}

func newMaintenanceCreateCmd(g *globalOptions, co *clusterOptions, ns *string) *cobra.Command {
	var f maintenanceCreateFlags
	cmd := &cobra.Command{
		Use:   "create [--schedule EXPR]",
		Short: "Make the CronJob that runs maintenance on a schedule",
		Long: `Make the CronJob ` + schedule.MaintenanceName + ` in cairn's namespace: it runs
` + "`cairn cluster maintenance run`" + ` with the install's ServiceAccount and
repository Secret on --schedule (the expressions of ` + "`schedule create`" + `),
waiting up to an hour for backups that hold the repository's lock. It
never runs twice at once.`,
		Example: `  cairn cluster maintenance create
  cairn cluster maintenance create --schedule "CRON_TZ=Europe/Paris 30 4 * * *" --max-unused 10%`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMaintenanceCreate(cmd, g, co, *ns, &f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.schedule, "schedule", schedule.DefaultMaintenanceSchedule, "when to run: five cron `fields`, @daily…, @every D, with an optional CRON_TZ=ZONE prefix")
	fs.StringVar(&f.image, "image", install.DefaultImage(version), "the cairn `image` maintenance runs")
	fs.StringVar(&f.pullPolicy, "image-pull-policy", "", "the image pull `policy` (Always, IfNotPresent, Never; default: Kubernetes')")
	fs.StringVar(&f.serviceAccount, "service-account", install.ServerName, "the `ServiceAccount` maintenance runs as")
	fs.StringVar(&f.secret, "secret", install.SecretName, "the repository `Secret` (CAIRN_REPOSITORY, CAIRN_PASSWORD, AWS_*)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "have the API server validate the CronJob (server-side dry run), print it, create nothing")
	f.add(fs)
	return cmd
}

func runMaintenanceCreate(cmd *cobra.Command, g *globalOptions, co *clusterOptions, ns string, f *maintenanceCreateFlags) error {
	ctx := cmd.Context()
	if err := f.check(); err != nil {
		return err
	}
	// The run's flags, as given (the defaults are the run's too).
	extra := f.args(cmd.Flags())
	// A backup holds a shared lock for its whole run: wait for it.
	extra = append(extra, "--retry-lock=1h")
	o := schedule.Options{Namespace: ns, Schedule: f.schedule, Image: f.image, ImagePullPolicy: f.pullPolicy,
		ServiceAccount: f.serviceAccount, Secret: f.secret}
	if _, err := schedule.MaintenanceCronJob(o, extra); err != nil {
		return err
	}
	cl, err := co.connect()
	if err != nil {
		return err
	}
	if o.RepositoryDir, err = repositoryDir(ctx, cl.Dynamic, ns, f.secret, g); err != nil {
		return err
	}
	if cl.Cluster != "" {
		extra = append(extra, "--cluster-name="+cl.Cluster)
	}
	cj, err := schedule.MaintenanceCronJob(o, extra)
	if err != nil {
		return err
	}
	created, err := createCronJob(ctx, g, cl, cj, f.dryRun,
		fmt.Sprintf("maintenance is already scheduled in namespace %s: delete it first (cairn cluster maintenance delete)", ns))
	if err != nil || created == nil {
		return err
	}
	tr, _ := schedule.Translate(f.schedule)
	if g.json {
		return g.printJSON(scheduleCreated{Name: schedule.MaintenanceName, Namespace: ns, Schedule: tr.Expr, TimeZone: tr.TimeZone}, false)
	}
	g.printf("maintenance scheduled: cronjob.batch/%s in %s runs %q%s\n", schedule.MaintenanceName, ns, tr.Expr, tzNote(tr.TimeZone))
	return nil
}

func newMaintenanceDeleteCmd(g *globalOptions, co *clusterOptions, ns *string) *cobra.Command {
	return &cobra.Command{
		Use:   "delete",
		Short: "Remove the maintenance CronJob and its Jobs (the records stay)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cl, err := co.connect()
			if err != nil {
				return err
			}
			bg := metav1.DeletePropagationBackground
			err = cl.Dynamic.Resource(cronJobsGVR).Namespace(*ns).Delete(ctx, schedule.MaintenanceName, metav1.DeleteOptions{PropagationPolicy: &bg})
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("no maintenance is scheduled in namespace %s (no CronJob %s)", *ns, schedule.MaintenanceName)
			}
			if err != nil {
				return fmt.Errorf("delete CronJob %s/%s: %w", *ns, schedule.MaintenanceName, err)
			}
			g.printf("maintenance unscheduled: cronjob.batch/%s deleted\n", schedule.MaintenanceName)
			return nil
		},
	}
}

// uniqueRecordName adds -2, -3, … to name while a record has it (two runs
// in one second).
func uniqueRecordName(name string, sns []*snapshot.Snapshot) string {
	taken := map[string]bool{}
	for _, sn := range sns {
		if sn.HasTag(layout.TagMaintenanceRecord) {
			for _, t := range sn.Tags {
				if v, ok := strings.CutPrefix(t, layout.TagMaintenance); ok {
					taken[v] = true
				}
			}
		}
	}
	out := name
	for i := 2; taken[out]; i++ {
		out = fmt.Sprintf("%s-%d", name, i)
	}
	return out
}
