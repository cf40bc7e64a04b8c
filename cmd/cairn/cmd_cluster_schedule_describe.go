package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/schedule"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

func newScheduleDescribeCmd(g *globalOptions, co *clusterOptions, ns *string) *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a schedule: its flags, runs, next run and the backups it made",
		Long: `Show a schedule: what it was created with, its Jobs (last run and result),
the next run (from the expression and time zone) and, when a repository is
given (-r or $CAIRN_REPOSITORY), the backups tagged schedule=NAME.`,
		Args: exactArgs(1, "the schedule's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cl, err := co.connect()
			if err != nil {
				return err
			}
			cj, err := getSchedule(ctx, cl, *ns, args[0])
			if err != nil {
				return err
			}
			row := scheduleRow(cj)
			if s, ok := schedule.ReadSpec(cj); ok {
				row.Spec = &s
			}
			if !row.Paused {
				row.NextRun = nextRun(row.Schedule, row.TimeZone, time.Now())
			}
			jobs, err := cl.Dynamic.Resource(jobsGVR).Namespace(*ns).List(ctx, metav1.ListOptions{LabelSelector: schedule.LabelSchedule + "=" + args[0]})
			if err != nil {
				return fmt.Errorf("list the schedule's Jobs: %w", err)
			}
			row.Runs = scheduleRuns(jobs.Items, cj.GetUID())
			if len(row.Runs) > 0 {
				row.LastRun = &row.Runs[0]
			}
			if g.repo != "" {
				row.Backups, err = scheduleBackups(ctx, g, args[0])
				if err != nil {
					row.BackupsProblem = err.Error()
				}
			}
			if g.json {
				return g.printJSON(row, false)
			}
			printSchedule(g, row)
			return nil
		},
	}
}

// nextRun is when the controller starts the next Job, nil if never.
func nextRun(expr, tz string, now time.Time) *time.Time {
	c, err := schedule.Parse(expr)
	if err != nil {
		return nil
	}
	loc := time.UTC
	if tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil
		}
	}
	if t := c.Next(now, loc); !t.IsZero() {
		return &t
	}
	return nil
}

// scheduleRuns are the Jobs the CronJob owns, newest first.
func scheduleRuns(jobs []unstructured.Unstructured, owner types.UID) []scheduleRunJSON {
	var runs []scheduleRunJSON
	for i := range jobs {
		j := &jobs[i]
		if !ownedBy(j, owner) {
			continue
		}
		run := scheduleRunJSON{Job: j.GetName(), Start: j.GetCreationTimestamp().Time, Result: "Running"}
		if t := timeField(j, "status", "startTime"); t != nil {
			run.Start = *t
		}
		conds, _, _ := unstructured.NestedSlice(j.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["status"] != "True" {
				continue
			}
			switch m["type"] {
			case "Complete":
				run.Result = "Succeeded"
			case "Failed":
				run.Result = "Failed"
			}
		}
		if run.Result != "Running" {
			run.End = timeField(j, "status", "completionTime")
			if run.End == nil {
				if t, ok := conditionTime(conds, "Failed"); ok {
					run.End = &t
				}
			}
		}
		runs = append(runs, run)
	}
	sort.Slice(runs, func(a, b int) bool { return runs[a].Start.After(runs[b].Start) })
	return runs
}

func ownedBy(u *unstructured.Unstructured, uid types.UID) bool {
	for _, o := range u.GetOwnerReferences() {
		if o.UID == uid {
			return true
		}
	}
	return false
}

func conditionTime(conds []any, typ string) (time.Time, bool) {
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			s, _ := m["lastTransitionTime"].(string)
			t, err := time.Parse(time.RFC3339, s)
			return t, err == nil
		}
	}
	return time.Time{}, false
}

// scheduleBackups are the backups tagged schedule=name, oldest first.
func scheduleBackups(ctx context.Context, g *globalOptions, name string) ([]backupListJSON, error) {
	r, err := g.openRepo(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	all, err := catalog.ListBackups(ctx, r, func(err error) { g.warnf("warning: %v\n", err) })
	if err != nil {
		return nil, err
	}
	var mine []*catalog.BackupEntry
	for _, e := range all {
		if e.Schedule == name {
			mine = append(mine, e)
		}
	}
	catalog.LoadBackupInfos(ctx, r, mine)
	rows := []backupListJSON{}
	for _, e := range mine {
		rows = append(rows, backupRow(e))
	}
	return rows, nil
}

func printSchedule(g *globalOptions, s scheduleJSON) {
	g.outf("Name:          %s\nNamespace:     %s\n", s.Name, s.Namespace)
	tz := s.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	if s.Spec != nil && s.Spec.Schedule != s.Schedule {
		g.outf("Schedule:      %s (as given: %s), time zone %s\n", s.Schedule, s.Spec.Schedule, tz)
	} else {
		g.outf("Schedule:      %s, time zone %s\n", s.Schedule, tz)
	}
	g.outf("Paused:        %t\n", s.Paused)
	if s.Spec != nil {
		ttl := s.Spec.TTL
		if ttl == "" {
			ttl = "default (720h)"
		}
		g.outf("Backup flags:  %s\nTTL:           %s\n", orNone(strings.Join(s.Spec.BackupArgs, " ")), ttl)
		g.outf("Retention:     %s\n", retentionLine(s.Spec.Retention))
	}
	next := "none (paused)"
	if !s.Paused {
		next = fmtTime(s.NextRun)
		if loc, err := time.LoadLocation(tz); err == nil && s.NextRun != nil {
			next += " (" + s.NextRun.In(loc).Format("2006-01-02 15:04 MST") + " " + tz + ")"
		}
	}
	g.outf("Next run:      %s\nLast schedule: %s\nLast success:  %s\nActive:        %d\n", next, fmtTime(s.LastScheduleTime), fmtTime(s.LastSuccessfulTime), s.Active)
	if s.LastRun != nil {
		g.outf("Last run:      %s (job %s): %s\n", fmtTime(&s.LastRun.Start), s.LastRun.Job, s.LastRun.Result)
	} else {
		g.outf("Last run:      none\n")
	}
	switch {
	case s.BackupsProblem != "":
		g.outf("Backups:       cannot read the repository: %s\n", s.BackupsProblem)
	case g.repo == "":
		g.outf("Backups:       (give -r or $CAIRN_REPOSITORY to list them)\n")
	default:
		g.outf("Backups:\n")
		printBackupTable(g, s.Backups, time.Now())
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func newSchedulePauseCmd(g *globalOptions, co *clusterOptions, ns *string, pause bool) *cobra.Command {
	use, short := "pause NAME", "Pause a schedule (suspend its CronJob; a running backup goes on)"
	if !pause {
		use, short = "unpause NAME", "Resume a paused schedule"
	}
	return &cobra.Command{
		Use: use, Short: short,
		Args: exactArgs(1, "the schedule's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cl, err := co.connect()
			if err != nil {
				return err
			}
			if _, err := getSchedule(ctx, cl, *ns, args[0]); err != nil {
				return err
			}
			patch := fmt.Sprintf(`{"spec":{"suspend":%t}}`, pause)
			if _, err := cl.Dynamic.Resource(cronJobsGVR).Namespace(*ns).Patch(ctx, args[0], types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "cairn"}); err != nil {
				return fmt.Errorf("patch CronJob %s/%s: %w", *ns, args[0], err)
			}
			g.printf("schedule %s %s\n", args[0], map[bool]string{true: "paused", false: "unpaused"}[pause])
			return nil
		},
	}
}

func newScheduleDeleteCmd(g *globalOptions, co *clusterOptions, ns *string) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a schedule and its Jobs (never its backups)",
		Args:  exactArgs(1, "the schedule's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cl, err := co.connect()
			if err != nil {
				return err
			}
			if _, err := getSchedule(ctx, cl, *ns, args[0]); err != nil {
				return err
			}
			// Background: the garbage collector deletes the Jobs and their
			// pods after the CronJob.
			bg := metav1.DeletePropagationBackground
			if err := cl.Dynamic.Resource(cronJobsGVR).Namespace(*ns).Delete(ctx, args[0], metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
				return fmt.Errorf("delete CronJob %s/%s: %w", *ns, args[0], err)
			}
			g.printf("schedule %s deleted (its backups stay in the repository)\n", args[0])
			return nil
		},
	}
}

// retentionLine says a schedule's stored retention policy.
func retentionLine(m map[string]string) string {
	if len(m) == 0 {
		return "none (only the TTL removes backups)"
	}
	p, err := schedule.RetentionPolicy(m)
	if err != nil {
		return "not understood, backups are kept: " + err.Error()
	}
	return p.String() + " (applied by cairn cluster maintenance)"
}
