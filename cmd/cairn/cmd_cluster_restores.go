package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/restore"
	"github.com/cairn-backup/cairn/k8s/restorelog"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
)

func init() {
	clusterSubcommands = append(clusterSubcommands, newClusterRestoresCmd, newClusterDescribeRestoreCmd)
}

// restoreRecorder keeps a cluster restore's record (k8s/restorelog) in
// the repository. Dry runs are not recorded: they change nothing in the
// cluster, and so stay readers (--no-lock, read-only repositories). With
// --no-lock or --read-only the repository is opened read-only and the
// restore runs without a record.
type restoreRecorder struct {
	g       *globalOptions
	on      bool
	tracker restorelog.Tracker
}

// newRestoreRecorder is called before the repository is opened: a
// recorded restore writes to it (a shared lock, as a backup).
func newRestoreRecorder(g *globalOptions, dryRun bool) (*restoreRecorder, error) {
	rr := &restoreRecorder{g: g, on: !dryRun && !g.noLock && !g.readOnly}
	if rr.on {
		if err := g.declareWrite("cluster restore", appendLock); err != nil {
			return nil, err
		}
	}
	return rr, nil
}

// checkName makes sure no earlier restore's record has opts.Name. A
// name the user gave is refused before anything is restored: its objects
// would carry the same cairn.io/restore-name label as the earlier
// restore's, and its record would hide the other's. A default name
// (defaulted) taken by a restore of the same backup in the same second is
// made again in the next second.
func (rr *restoreRecorder) checkName(ctx context.Context, r *repo.Repository, opts *restore.RestoreOptions, backup string, defaulted bool) error {
	for tries := 0; ; tries++ {
		taken, err := restorelog.Taken(ctx, r, opts.Name)
		if err != nil || !taken {
			return err
		}
		if !defaulted || tries == 3 {
			return fmt.Errorf("a restore named %q was already run (`cairn cluster describe-restore %s`): give another --restore-name, or leave it out for a new one",
				opts.Name, opts.Name)
		}
		select {
		case <-time.After(time.Until(time.Now().Truncate(time.Second).Add(time.Second))):
		case <-ctx.Done():
			return ctx.Err()
		}
		opts.Name = restore.DefaultRestoreName(backup, time.Now())
	}
}

// track notes when each item is done, for the record's log.
func (rr *restoreRecorder) track(opts *restore.RestoreOptions) {
	opts.OnItem = rr.tracker.Wrap(opts.OnItem)
}

// saveRestoreRecord is restorelog.Save; a test makes it fail.
var saveRestoreRecord = restorelog.Save

// save records the restore. A failure is a warning: the restore's own
// result decides the exit code. An interrupted restore is recorded too.
func (rr *restoreRecorder) save(ctx context.Context, r *repo.Repository, opts *restore.RestoreOptions, res *restore.RestoreResult, runErr error, from string) {
	g := rr.g
	if res == nil || res.DryRun {
		return
	}
	if !rr.on {
		g.warnf("note: no record of restore %s is kept: --no-lock and --read-only open the repository read-only\n", res.Name)
		return
	}
	rec := &restorelog.Record{RestoreResult: res, CairnVersion: version, SourceCluster: from, Spec: restorelog.SpecOf(*opts)}
	if runErr != nil {
		rec.Error = runErr.Error()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	sn, err := saveRestoreRecord(ctx, r, rec, &rr.tracker)
	if err != nil {
		g.warnf("warning: the record of restore %s was not saved in the repository: %v\n", res.Name, err)
		return
	}
	g.printf("record saved as snapshot %s (`cairn cluster describe-restore %s`)\n", sn.ID.Str(), res.Name)
}

// restoreListJSON is one row of `cluster restores --json`.
type restoreListJSON struct {
	Name          string            `json:"name"`
	Backup        string            `json:"backup"`
	Cluster       string            `json:"cluster"`
	SourceCluster string            `json:"source_cluster,omitempty"`
	Start         time.Time         `json:"start"`
	End           time.Time         `json:"end"`
	Duration      float64           `json:"duration"` // seconds
	Phase         string            `json:"phase"`
	Counts        restorelog.Counts `json:"totals"` // as in describe-restore; "counts" there is per resource
	Warnings      int               `json:"warnings"`
	Errors        int               `json:"errors"`
	SnapshotID    string            `json:"snapshot_id"` // the record's
	ShortID       string            `json:"short_id"`
	// Problem says why the record could not be read.
	Problem string `json:"problem,omitempty"`
}

func restoreRow(e *restorelog.Entry) restoreListJSON {
	sn := e.Snapshot
	row := restoreListJSON{Name: e.Name, Backup: e.Backup, Cluster: sn.Hostname, Start: sn.Time, Phase: "Unknown",
		SnapshotID: sn.ID.String(), ShortID: sn.ID.Str()}
	if e.Err != nil {
		row.Problem = e.Err.Error()
		return row
	}
	res := e.Record.RestoreResult
	row.SourceCluster, row.Start, row.End, row.Phase = e.Record.SourceCluster, res.Start, res.End, res.Phase
	row.Duration = res.End.Sub(res.Start).Seconds()
	row.Counts = restorelog.CountsOf(res)
	row.Warnings, row.Errors = len(res.Warnings), len(res.Errors)
	if res.Cluster != "" {
		row.Cluster = res.Cluster
	}
	return row
}

// termEscaper quotes names from the repository on a terminal; piped
// output stays exact.
func termEscaper(g *globalOptions) func(string) string {
	if isTerminal(g.env.stdout) {
		return escapeName
	}
	return func(s string) string { return s }
}

func newClusterRestoresCmd(g *globalOptions, _ *clusterOptions) *cobra.Command {
	var backup string
	cmd := &cobra.Command{
		Use:   "restores",
		Short: "List the cluster restores recorded in the repository",
		Long: `List the cluster restores recorded in the repository, oldest first.

Every cluster restore that is not a dry run keeps a record in the
repository: a small snapshot tagged cairn-restore, restore=NAME and
restore-of=BACKUP, whose host is the cluster restored into, holding
/restore.json (the result, as ` + "`cluster restore --json`" + ` prints it, and the
options) and /restore.log. ` + "`cairn cluster describe-restore NAME`" + ` shows one.
Records are snapshots: restic lists them, ` + "`forget`" + ` thins them out like
any others (they form their own groups), and deleting a backup keeps the
records of its restores.`,
		Args: exactArgs(0, "no arguments"),
		RunE: onRepo(g, func(ctx context.Context, r *repo.Repository, _ []string) error {
			entries, err := restorelog.List(ctx, r, backup, func(err error) { g.warnf("warning: %v\n", err) })
			if err != nil {
				return err
			}
			if err := r.LoadIndex(ctx); err != nil {
				return err
			}
			restorelog.Load(ctx, r, entries)
			rows := make([]restoreListJSON, 0, len(entries))
			for _, e := range entries {
				rows = append(rows, restoreRow(e))
			}
			if g.json {
				return g.printJSON(rows, false)
			}
			printRestoreList(g, rows)
			return nil
		}),
	}
	cmd.Flags().StringVar(&backup, "backup", "", "list only the restores of this `backup`")
	return cmd
}

func printRestoreList(g *globalOptions, rows []restoreListJSON) {
	esc := termEscaper(g)
	header := []string{"NAME", "BACKUP", "CLUSTER", "STARTED", "DURATION", "PHASE", "CREATED", "UPDATED", "EXISTED", "SKIPPED", "FAILED", "RECORD"}
	var cells [][]string
	for _, r := range rows {
		dur := "?"
		if r.Problem == "" {
			dur = formatDuration(time.Duration(r.Duration * float64(time.Second)))
		}
		c := r.Counts
		cells = append(cells, []string{esc(r.Name), esc(r.Backup), esc(r.Cluster), r.Start.Local().Format("2006-01-02 15:04:05"), dur, esc(r.Phase),
			strconv.Itoa(c.Created), strconv.Itoa(c.Updated), strconv.Itoa(c.Existed), strconv.Itoa(c.Skipped), strconv.Itoa(c.Failed), r.ShortID})
	}
	printTable(g, header, cells)
	g.outf("%s\n", plural(len(rows), "restore"))
	for _, r := range rows {
		if r.Problem != "" {
			g.warnf("warning: restore %s: %s\n", esc(r.Name), esc(r.Problem))
		}
	}
}

// restoreDescribeJSON is `cluster describe-restore --json`: the record
// as stored, the record's snapshot and how many records share the name.
type restoreDescribeJSON struct {
	*restorelog.Record
	Counts           restorelog.Counts `json:"totals"`
	RecordSnapshotID string            `json:"record_snapshot_id"`
	SameName         int               `json:"records_with_this_name"`
}

func newClusterDescribeRestoreCmd(g *globalOptions, _ *clusterOptions) *cobra.Command {
	var details, log bool
	cmd := &cobra.Command{
		Use:   "describe-restore NAME",
		Short: "Show how a recorded cluster restore went",
		Long: `Show a cluster restore from its record in the repository: what was
restored from which backup into which cluster, with which options, the
counts per resource, warnings, errors and failed objects; --details lists
every object, --log prints the stored log. NAME is a restore's name (the
newest record, should several have it), "latest", or the record's snapshot
ID; ` + "`cairn cluster restores`" + ` lists them.`,
		Args: exactArgs(1, "a restore name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if log && g.json {
				return errors.New("--log prints the stored text log; leave out --json (--json alone prints the record)")
			}
			ctx := cmd.Context()
			r, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			// The record's snapshot first, then the index (design.rst's read order).
			e, n, err := restorelog.Find(ctx, r, args[0])
			if err != nil {
				return err
			}
			if err := r.LoadIndex(ctx); err != nil {
				return err
			}
			if log {
				return writeRestoreLog(ctx, g, r, e.Snapshot)
			}
			rec, err := restorelog.ReadRecord(ctx, r, e.Snapshot)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(restoreDescribeJSON{Record: rec, Counts: restorelog.CountsOf(rec.RestoreResult),
					RecordSnapshotID: e.Snapshot.ID.String(), SameName: n}, true)
			}
			printRestoreDescription(g, rec, e.Snapshot, n, details)
			return nil
		},
	}
	cmd.Flags().BoolVar(&details, "details", false, "also list every object and what happened to it")
	cmd.Flags().BoolVar(&log, "log", false, "print the restore's stored log instead")
	return cmd
}

func printRestoreDescription(g *globalOptions, rec *restorelog.Record, sn *snapshot.Snapshot, sameName int, details bool) {
	esc := termEscaper(g)
	res := rec.RestoreResult
	short := res.SnapshotID
	if len(short) > 8 {
		short = short[:8]
	}
	from := ""
	if rec.SourceCluster != "" {
		from = ", of cluster " + esc(rec.SourceCluster)
	}
	g.outf("Name:         %s\n", esc(res.Name))
	g.outf("Backup:       %s (snapshot %s%s)\n", esc(res.Backup), esc(short), from)
	g.outf("Cluster:      %s\n", esc(res.Cluster))
	g.outf("Phase:        %s\n", esc(res.Phase))
	g.outf("Started:      %s\n", res.Start.Local().Format(time.RFC3339))
	g.outf("Completed:    %s (took %s)\n", res.End.Local().Format(time.RFC3339), formatDuration(res.End.Sub(res.Start)))
	if rec.Error != "" {
		g.outf("Stopped:      %s\n", esc(rec.Error))
	}
	g.outf("Record:       snapshot %s", sn.ID.Str())
	if rec.CairnVersion != "" {
		g.outf(", by cairn %s", esc(rec.CairnVersion))
	}
	g.outf("\n")
	if sameName > 1 {
		g.outf("Note:         %d restores are named %s; this is the newest (`cairn cluster restores` lists all)\n", sameName, esc(res.Name))
	}
	g.outf("\n")
	for _, l := range rec.Spec.Lines() {
		g.outf("%s\n", esc(l))
	}
	c := restorelog.CountsOf(res)
	g.outf("\nItems:        %d created, %d updated, %d existed, %d failed; %d skipped (filtered out or never restored)\n",
		c.Created, c.Updated, c.Existed, c.Failed, c.Skipped)
	if header, rows := restoreTable(res); len(rows) > 0 {
		for _, row := range rows {
			row[0] = esc(row[0])
		}
		printTable(g, header, rows)
	}
	if len(res.Hooks) > 0 {
		g.outf("\nHooks:        %d\n", len(res.Hooks))
		for _, h := range res.Hooks {
			g.outf("  %s\n", esc(hookSummary(h)))
		}
	}
	for _, l := range []struct {
		title string
		msgs  []string
	}{{"Warnings", res.Warnings}, {"Errors", res.Errors}} {
		if len(l.msgs) > 0 {
			g.outf("\n%s:\n", l.title)
			for _, m := range l.msgs {
				g.outf("  %s\n", esc(m))
			}
		}
	}
	if c.Failed > 0 && !details {
		g.outf("\nFailed:\n")
		for _, it := range res.Items {
			if it.Action == restore.ActionFailed {
				g.outf("  %s %s: %s\n", esc(it.Resource), esc(itemPath(it)), esc(it.Reason))
			}
		}
	}
	if !details {
		return
	}
	g.outf("\nObjects:\n")
	for _, it := range res.Items {
		from := ""
		if it.SourceNamespace != "" {
			from = " (from namespace " + esc(it.SourceNamespace) + ")"
		}
		g.outf("  %-14s %s %s%s%s\n", esc(it.Action), esc(it.Resource), esc(itemPath(it)), from, esc(reasonSuffix(it.Reason)))
	}
}

// writeRestoreLog prints a record's log: exact when piped, each line
// with control characters quoted on a terminal (the log is read from the
// repository, and names in it may be anyone's).
func writeRestoreLog(ctx context.Context, g *globalOptions, r *repo.Repository, sn *snapshot.Snapshot) error {
	g.outMu.Lock()
	defer g.outMu.Unlock()
	if !isTerminal(g.env.stdout) {
		return restorelog.WriteLog(ctx, r, sn, g.env.stdout)
	}
	var buf bytes.Buffer
	if err := restorelog.WriteLog(ctx, r, sn, &buf); err != nil {
		return err
	}
	w := bufio.NewWriter(g.env.stdout)
	for line := range strings.Lines(buf.String()) {
		fmt.Fprintln(w, escapeName(strings.TrimSuffix(line, "\n")))
	}
	return w.Flush()
}
