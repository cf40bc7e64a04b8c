package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/install"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/schedule"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

func init() { clusterSubcommands = append(clusterSubcommands, newClusterScheduleCmd) }

var (
	cronJobsGVR = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}
	jobsGVR     = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	secretsGVR  = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

// scheduleNotPassed are backup flags the schedule handles itself (--ttl
// is kept in the spec and passed on by schedule.Args).
var scheduleNotPassed = []string{"schedule-name", "wait", "ttl"}

func newClusterScheduleCmd(g *globalOptions, co *clusterOptions) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Run cluster backups on a schedule, as Kubernetes CronJobs",
		Long: `A schedule is a CronJob in cairn's namespace (cairn cluster install) that
runs ` + "`cairn cluster backup --schedule-name NAME …`" + ` with the install's
ServiceAccount (cairn) and repository Secret. Each backup is named
NAME-<YYYYMMDDhhmmss> (UTC, when it starts) and tagged schedule=NAME; two
never run at once (concurrencyPolicy Forbid).`,
	}
	cmd.PersistentFlags().StringVar(&ns, "namespace", install.DefaultNamespace, "the `namespace` cairn was installed into (where the CronJobs are)")
	cmd.AddCommand(newScheduleCreateCmd(g, co, &ns), newScheduleListCmd(g, co, &ns), newScheduleDescribeCmd(g, co, &ns),
		newSchedulePauseCmd(g, co, &ns, true), newSchedulePauseCmd(g, co, &ns, false), newScheduleDeleteCmd(g, co, &ns))
	return cmd
}

type scheduleCreateFlags struct {
	schedule, image, pullPolicy, serviceAccount, secret string
	paused, skipImmediately, dryRun                     bool
}

func newScheduleCreateCmd(g *globalOptions, co *clusterOptions, ns *string) *cobra.Command {
	var f scheduleCreateFlags
	cmd := &cobra.Command{
		Use:   "create NAME --schedule EXPR [backup flags]",
		Short: "Make a schedule: a CronJob that runs cluster backups",
		Long: `Make a CronJob that runs ` + "`cairn cluster backup`" + ` with the backup flags given
here (all of cluster backup's), on --schedule:

  "0 */6 * * *"                   five cron fields (or @hourly, @daily, @weekly, …)
  "@every 6h"                     translated to cron when cron repeats it evenly
                                  (minutes dividing 60, hours dividing 24, 1d, 7d)
  "CRON_TZ=Europe/Paris 0 3 * * *" the CronJob's time zone (TZ= too; default UTC)

The first backup runs at once (a Job made from the CronJob, as kubectl
create job --from=cronjob/NAME does) unless --skip-immediately or --paused.
A local repository directory is mounted into the pods from the node at
the same path, as the agents get it. --cluster-name defaults to this
context's cluster (a pod's would be "in-cluster"), --agent-namespace to
--namespace. A backup that fails is not retried (backoffLimit 0): a
partial one is saved as it is, and the next run comes at its time.`,
		Example: `  cairn cluster schedule create nightly --schedule "CRON_TZ=Europe/Paris 0 3 * * *" --ttl 720h
  cairn cluster schedule create shop --schedule "@every 6h" --include-namespaces shop --skip-immediately`,
		Args: exactArgs(1, "the schedule's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runScheduleCreate(cmd, g, co, *ns, &f, args[0])
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.schedule, "schedule", "", "when to run: five cron `fields`, @daily…, @every D, with an optional CRON_TZ=ZONE prefix (required)")
	fs.StringVar(&f.image, "image", install.DefaultImage(version), "the cairn `image` the backups run")
	fs.StringVar(&f.pullPolicy, "image-pull-policy", "", "the image pull `policy` (Always, IfNotPresent, Never; default: Kubernetes')")
	fs.StringVar(&f.serviceAccount, "service-account", install.ServerName, "the `ServiceAccount` the backups run as")
	fs.StringVar(&f.secret, "secret", install.SecretName, "the repository `Secret` (CAIRN_REPOSITORY, CAIRN_PASSWORD, AWS_*) the backups read")
	fs.BoolVar(&f.paused, "paused", false, "make the schedule paused (suspended); nothing runs until unpause")
	fs.BoolVar(&f.skipImmediately, "skip-immediately", false, "do not run the first backup now; wait for the schedule")
	fs.BoolVar(&f.dryRun, "dry-run", false, "have the API server validate the CronJob (server-side dry run), print it, create nothing")
	for _, name := range schedule.RetentionFlags {
		what, isWithin := strings.CutPrefix(name, "keep-within")
		if isWithin {
			fs.String(name, "", "maintenance keeps the schedule's"+strings.ReplaceAll(what, "-", " ")+" backups newer than this `duration` (e.g. 30d) before the newest")
		} else {
			what := strings.TrimPrefix(name, "keep-") + " "
			if what == "last " {
				what = ""
			}
			fs.String(name, "", "maintenance keeps the last `n` "+what+"backups of the schedule (-1: all)")
		}
	}
	// Every flag of cluster backup, passed on as given.
	newClusterBackupCmd(g, co).Flags().VisitAll(func(fl *pflag.Flag) {
		if fl.Name != "schedule-name" && fl.Name != "wait" {
			fs.AddFlag(fl)
		}
	})
	return cmd
}

// backupArgs are the backup flags the user set, as command-line words.
func backupArgs(cmd *cobra.Command) []string {
	own := cmd.LocalNonPersistentFlags()
	var out []string
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		if slices.Contains(scheduleNotPassed, fl.Name) || own.Lookup(fl.Name) == nil || isScheduleOwnFlag(fl.Name) {
			return
		}
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				out = append(out, "--"+fl.Name+"="+v)
			}
			return
		}
		out = append(out, "--"+fl.Name+"="+fl.Value.String())
	})
	return out
}

func isScheduleOwnFlag(name string) bool {
	switch name {
	case "schedule", "image", "image-pull-policy", "service-account", "secret", "paused", "skip-immediately", "dry-run":
		return true
	}
	return slices.Contains(schedule.RetentionFlags, name)
}

func runScheduleCreate(cmd *cobra.Command, g *globalOptions, co *clusterOptions, ns string, f *scheduleCreateFlags, name string) error {
	ctx := cmd.Context()
	if f.schedule == "" {
		return &usageError{cmd: cmd.CommandPath(), err: errors.New("--schedule is required (e.g. \"0 3 * * *\" or \"@every 6h\")")}
	}
	o := schedule.Options{Name: name, Namespace: ns, Schedule: f.schedule, Image: f.image, ImagePullPolicy: f.pullPolicy,
		ServiceAccount: f.serviceAccount, Secret: f.secret, BackupArgs: backupArgs(cmd), Paused: f.paused}
	if fl := cmd.Flags().Lookup("ttl"); fl.Changed {
		o.TTL = fl.Value.String()
	}
	for _, name := range schedule.RetentionFlags {
		if fl := cmd.Flags().Lookup(name); fl.Changed {
			if o.Retention == nil {
				o.Retention = map[string]string{}
			}
			o.Retention[name] = fl.Value.String()
		}
	}
	// Checked before anything is created: the schedule, the name.
	if _, err := schedule.CronJob(o); err != nil {
		return err
	}
	cl, err := co.connect()
	if err != nil {
		return err
	}
	if o.RepositoryDir, err = repositoryDir(ctx, cl.Dynamic, ns, f.secret, g); err != nil {
		return err
	}
	// Inside the cluster the context's name is "in-cluster": scheduled
	// backups record the name backups made from here do. The agents watch
	// the install's namespace.
	if !cmd.Flags().Changed("cluster-name") && cl.Cluster != "" {
		o.BackupArgs = append(o.BackupArgs, "--cluster-name="+cl.Cluster)
	}
	if !cmd.Flags().Changed("agent-namespace") && ns != defaultAgentNamespace {
		o.BackupArgs = append(o.BackupArgs, "--agent-namespace="+ns)
	}
	cj, _ := schedule.CronJob(o)
	created, err := createCronJob(ctx, g, cl, cj, f.dryRun,
		fmt.Sprintf("schedule %s exists in namespace %s: delete it first (cairn cluster schedule delete %s)", name, ns, name))
	if err != nil || created == nil {
		return err
	}
	tr, _ := schedule.Translate(f.schedule)
	out := scheduleCreated{Name: name, Namespace: ns, Schedule: tr.Expr, TimeZone: tr.TimeZone, Paused: f.paused}
	if !g.json {
		g.printf("schedule %s created: cronjob.batch/%s in %s runs %q%s\n", name, name, ns, tr.Expr, tzNote(tr.TimeZone))
	}
	if !f.paused && !f.skipImmediately {
		job, err := schedule.JobFrom(created, time.Now())
		if err != nil {
			return err
		}
		if _, err := cl.Dynamic.Resource(jobsGVR).Namespace(ns).Create(ctx, job, metav1.CreateOptions{FieldManager: "cairn"}); err != nil {
			return fmt.Errorf("schedule %s made, but its first backup could not start (it runs at the next scheduled time): create Job: %w", name, err)
		}
		out.FirstJob = job.GetName()
		if !g.json {
			g.printf("first backup started: job.batch/%s\n", job.GetName())
		}
	}
	if g.json {
		return g.printJSON(out, false)
	}
	return nil
}

// scheduleCreated is what `schedule create --json` prints.
type scheduleCreated struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Schedule  string `json:"schedule"` // as the CronJob runs it
	TimeZone  string `json:"time_zone,omitempty"`
	Paused    bool   `json:"paused"`
	FirstJob  string `json:"first_job,omitempty"` // the Job of the immediate first backup
}

func tzNote(tz string) string {
	if tz == "" {
		return " (UTC)"
	}
	return " in time zone " + tz
}

// repositoryDir reads the repository Secret's location: a local directory
// is mounted into the pods. A Secret that is not there fails (the backups
// could not start); one the user may not read is taken on trust.
func repositoryDir(ctx context.Context, dyn dynamic.Interface, ns, secret string, g *globalOptions) (string, error) {
	s, err := dyn.Resource(secretsGVR).Namespace(ns).Get(ctx, secret, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", fmt.Errorf("no Secret %s in namespace %s: run `cairn cluster install` first (or give --secret, --namespace)", secret, ns)
	case err != nil:
		g.warnf("warning: cannot read Secret %s/%s (%v): assuming an object-store repository\n", ns, secret, err)
		return "", nil
	}
	enc, _, _ := unstructured.NestedString(s.Object, "data", install.EnvRepository)
	loc, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(loc) == 0 {
		return "", fmt.Errorf("the Secret %s/%s has no %s: re-run `cairn cluster install` (or give --secret)", ns, secret, install.EnvRepository)
	}
	if l := string(loc); strings.HasPrefix(l, "/") || strings.HasPrefix(l, "local:/") {
		return strings.TrimPrefix(l, "local:"), nil
	}
	return "", nil
}

// scheduleJSON is a schedule in list and describe --json.
type scheduleJSON struct {
	Name               string            `json:"name"`
	Namespace          string            `json:"namespace"`
	Schedule           string            `json:"schedule"`
	TimeZone           string            `json:"time_zone,omitempty"`
	Paused             bool              `json:"paused"`
	LastScheduleTime   *time.Time        `json:"last_schedule_time,omitempty"`
	LastSuccessfulTime *time.Time        `json:"last_successful_time,omitempty"`
	Active             int               `json:"active"`
	Spec               *schedule.Spec    `json:"spec,omitempty"`
	NextRun            *time.Time        `json:"next_run,omitempty"`
	LastRun            *scheduleRunJSON  `json:"last_run,omitempty"`
	Runs               []scheduleRunJSON `json:"runs,omitempty"`
	Backups            []backupListJSON  `json:"backups,omitempty"`
	BackupsProblem     string            `json:"backups_problem,omitempty"`
}

type scheduleRunJSON struct {
	Job    string     `json:"job"`
	Start  time.Time  `json:"start"`
	End    *time.Time `json:"end,omitempty"`
	Result string     `json:"result"` // Succeeded, Failed, Running
}

func scheduleRow(cj *unstructured.Unstructured) scheduleJSON {
	row := scheduleJSON{Name: cj.GetName(), Namespace: cj.GetNamespace()}
	row.Schedule, _, _ = unstructured.NestedString(cj.Object, "spec", "schedule")
	row.TimeZone, _, _ = unstructured.NestedString(cj.Object, "spec", "timeZone")
	row.Paused, _, _ = unstructured.NestedBool(cj.Object, "spec", "suspend")
	row.LastScheduleTime = timeField(cj, "status", "lastScheduleTime")
	row.LastSuccessfulTime = timeField(cj, "status", "lastSuccessfulTime")
	active, _, _ := unstructured.NestedSlice(cj.Object, "status", "active")
	row.Active = len(active)
	return row
}

func timeField(u *unstructured.Unstructured, path ...string) *time.Time {
	s, ok, _ := unstructured.NestedString(u.Object, path...)
	if !ok {
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil
	}
	return &t
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func newScheduleListCmd(g *globalOptions, co *clusterOptions, ns *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the schedules",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := co.connect()
			if err != nil {
				return err
			}
			list, err := cl.Dynamic.Resource(cronJobsGVR).Namespace(*ns).List(cmd.Context(), metav1.ListOptions{LabelSelector: schedule.LabelSchedule})
			if err != nil {
				return fmt.Errorf("list CronJobs in %s: %w", *ns, err)
			}
			rows := []scheduleJSON{}
			for i := range list.Items {
				rows = append(rows, scheduleRow(&list.Items[i]))
			}
			if g.json {
				return g.printJSON(rows, false)
			}
			var cells [][]string
			for _, r := range rows {
				tz := r.TimeZone
				if tz == "" {
					tz = "UTC"
				}
				cells = append(cells, []string{r.Name, r.Schedule, tz, strconv.FormatBool(r.Paused), fmtTime(r.LastScheduleTime), fmtTime(r.LastSuccessfulTime), strconv.Itoa(r.Active)})
			}
			printTable(g, []string{"NAME", "SCHEDULE", "TIME ZONE", "PAUSED", "LAST SCHEDULE", "LAST SUCCESS", "ACTIVE"}, cells)
			g.outf("%s\n", plural(len(rows), "schedule"))
			return nil
		},
	}
}

// getSchedule finds a schedule's CronJob (one cairn made).
func getSchedule(ctx context.Context, cl *kube.Clients, ns, name string) (*unstructured.Unstructured, error) {
	cj, err := cl.Dynamic.Resource(cronJobsGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("no schedule %s in namespace %s: `cairn cluster schedule list` shows them", name, ns)
	}
	if err != nil {
		return nil, fmt.Errorf("get CronJob %s/%s: %w", ns, name, err)
	}
	if cj.GetLabels()[schedule.LabelSchedule] == "" {
		return nil, fmt.Errorf("CronJob %s/%s is not a cairn schedule (no %s label): leaving it alone", ns, name, schedule.LabelSchedule)
	}
	return cj, nil
}

// createCronJob creates cj (with dryRun: has the API server validate it
// and prints it as YAML, returning nil); exists is the error when a
// CronJob of that name is there.
func createCronJob(ctx context.Context, g *globalOptions, cl *kube.Clients, cj *unstructured.Unstructured, dryRun bool, exists string) (*unstructured.Unstructured, error) {
	opts := metav1.CreateOptions{FieldManager: "cairn"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	created, err := cl.Dynamic.Resource(cronJobsGVR).Namespace(cj.GetNamespace()).Create(ctx, cj, opts)
	if apierrors.IsAlreadyExists(err) {
		return nil, errors.New(exists)
	}
	if err != nil {
		return nil, fmt.Errorf("create CronJob %s/%s: %w", cj.GetNamespace(), cj.GetName(), err)
	}
	if !dryRun {
		return created, nil
	}
	created.SetManagedFields(nil)
	out, err := yaml.Marshal(created.Object)
	if err != nil {
		return nil, err
	}
	g.outf("%s", out)
	return nil, nil
}
