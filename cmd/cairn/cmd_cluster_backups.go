package main

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
)

// backupHandle is an open repository and one backup in it.
type backupHandle struct {
	r     *repo.Repository
	entry *catalog.BackupEntry
}

// backupListJSON is one row of `cluster backups --json`.
type backupListJSON struct {
	Name       string     `json:"name"`
	SnapshotID string     `json:"snapshot_id"`
	ShortID    string     `json:"short_id"`
	Cluster    string     `json:"cluster"`
	Schedule   string     `json:"schedule,omitempty"`
	Phase      string     `json:"phase"`
	Items      int        `json:"items"`
	Warnings   int        `json:"warnings"`
	Errors     int        `json:"errors"`
	Time       time.Time  `json:"time"`
	Expires    *time.Time `json:"expires,omitempty"`
	DataAdded  uint64     `json:"data_added"`
	// Problem says why backup.json could not be read.
	Problem string `json:"problem,omitempty"`
}

func newClusterBackupsCmd(g *globalOptions, _ *clusterOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "backups",
		Short: "List the cluster backups in the repository",
		Args:  exactArgs(0, "no arguments"),
		RunE: onRepo(g, func(ctx context.Context, r *repo.Repository, _ []string) error {
			if err := r.LoadIndex(ctx); err != nil {
				return err
			}
			entries, err := catalog.ListBackups(ctx, r, func(err error) { g.warnf("warning: %v\n", err) })
			if err != nil {
				return err
			}
			catalog.LoadBackupInfos(ctx, r, entries)
			rows := make([]backupListJSON, 0, len(entries))
			for _, e := range entries {
				rows = append(rows, backupRow(e))
			}
			if g.json {
				return g.printJSON(rows, false)
			}
			printBackupTable(g, rows, time.Now())
			return nil
		}),
	}
}

func backupRow(e *catalog.BackupEntry) backupListJSON {
	sn := e.Snapshot
	row := backupListJSON{Name: e.Name, SnapshotID: sn.ID.String(), ShortID: sn.ID.Str(), Cluster: sn.Hostname,
		Schedule: e.Schedule, Time: sn.Time, Expires: e.Expires, Phase: "Unknown"}
	if sn.Summary != nil {
		row.DataAdded = sn.Summary.DataAdded
	}
	if e.Info != nil {
		row.Phase, row.Items = e.Info.Phase, e.Info.TotalItems
		row.Warnings, row.Errors = len(e.Info.Warnings), len(e.Info.Errors)
		if e.Info.Cluster != "" {
			row.Cluster = e.Info.Cluster
		}
	} else if e.InfoErr != nil {
		row.Problem = e.InfoErr.Error()
	}
	return row
}

func printBackupTable(g *globalOptions, rows []backupListJSON, now time.Time) {
	header := []string{"NAME", "STATUS", "ITEMS", "ERRORS", "WARNINGS", "CREATED", "EXPIRES", "CLUSTER", "ADDED", "SNAPSHOT"}
	var cells [][]string
	for _, r := range rows {
		cells = append(cells, []string{r.Name, r.Phase, strconv.Itoa(r.Items), strconv.Itoa(r.Errors), strconv.Itoa(r.Warnings),
			r.Time.Local().Format("2006-01-02 15:04:05"), expiresIn(r.Expires, now), r.Cluster, formatBytes(r.DataAdded), r.ShortID})
	}
	printTable(g, header, cells)
	g.outf("%s\n", plural(len(rows), "backup"))
}

// expiresIn says when a backup expires, relative to now: "29d", "5h",
// "expired", "never".
func expiresIn(exp *time.Time, now time.Time) string {
	if exp == nil {
		return "never"
	}
	d := exp.Sub(now)
	switch {
	case d <= 0:
		return "expired"
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dm", max(1, int(d.Minutes())))
	}
}

// backupDescribeJSON is `cluster describe --json`.
type backupDescribeJSON struct {
	*layout.BackupInfo
	SnapshotID string               `json:"snapshot_id"`
	Schedule   string               `json:"schedule,omitempty"`
	Bytes      uint64               `json:"bytes"` // manifests
	Resources  []catalog.BackupItem `json:"resources,omitempty"`
}

func newClusterDescribeCmd(g *globalOptions, _ *clusterOptions) *cobra.Command {
	var details bool
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show what a cluster backup holds and how it went",
		Args:  exactArgs(1, "a backup name"),
		RunE: onBackup(g, func(ctx context.Context, b *backupHandle) error {
			sn := b.entry.Snapshot
			info, err := catalog.ReadBackupInfo(ctx, b.r, sn)
			if err != nil {
				return err
			}
			items, err := catalog.ListBackupItems(ctx, b.r, sn)
			if err != nil {
				return err
			}
			out := backupDescribeJSON{BackupInfo: info, SnapshotID: sn.ID.String(), Schedule: b.entry.Schedule}
			for _, it := range items {
				out.Bytes += it.Size
			}
			if details {
				out.Resources = items
			}
			if g.json {
				return g.printJSON(out, true)
			}
			printBackupDescription(g, &out, items, details)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&details, "details", false, "also list every object in the backup")
	return cmd
}

func printBackupDescription(g *globalOptions, d *backupDescribeJSON, items []catalog.BackupItem, details bool) {
	i := d.BackupInfo
	or := func(s []string, none string) string {
		if len(s) == 0 {
			return none
		}
		return strings.Join(s, ", ")
	}
	g.outf("Name:         %s\n", i.Name)
	g.outf("Snapshot:     %s\n", d.SnapshotID)
	g.outf("Cluster:      %s (Kubernetes %s)\n", i.Cluster, or([]string{i.KubernetesVersion}, "?"))
	g.outf("Phase:        %s\n", i.Phase)
	if d.Schedule != "" {
		g.outf("Schedule:     %s\n", d.Schedule)
	}
	g.outf("Started:      %s\n", i.Start.Local().Format(time.RFC3339))
	g.outf("Completed:    %s (took %s)\n", i.End.Local().Format(time.RFC3339), formatDuration(i.End.Sub(i.Start)))
	if i.Expires != nil {
		g.outf("Expires:      %s (%s)\n", i.Expires.Local().Format(time.RFC3339), expiresIn(i.Expires, time.Now()))
	} else {
		g.outf("Expires:      never\n")
	}
	s := i.Spec
	g.outf("\nNamespaces:   included: %s; excluded: %s\n", or(s.IncludeNamespaces, "*"), or(s.ExcludeNamespaces, "<none>"))
	g.outf("Resources:    included: %s; excluded: %s\n", or(s.IncludeResources, "*"), or(s.ExcludeResources, "<none>"))
	cluster := "auto"
	if s.IncludeClusterResources != nil {
		cluster = strconv.FormatBool(*s.IncludeClusterResources)
	}
	g.outf("Cluster-scoped resources: %s\n", cluster)
	g.outf("Label selector: %s\n", or(append(slices.DeleteFunc([]string{s.Selector}, func(x string) bool { return x == "" }), s.OrSelectors...), "<none>"))

	g.outf("\nItems:        %d (%s of manifests)\n", i.TotalItems, formatBytes(d.Bytes))
	for _, res := range slices.Sorted(maps.Keys(i.Items)) {
		g.outf("  %-50s %d\n", res, i.Items[res])
	}
	if len(i.Volumes) > 0 {
		g.outf("\nVolumes:      %d\n", len(i.Volumes))
		for _, v := range i.Volumes {
			describeVolume(g, v, details)
		}
	}
	if len(i.Hooks) > 0 {
		g.outf("\nHooks:        %d\n", len(i.Hooks))
		esc := termEscaper(g) // names and errors come from the cluster
		for _, h := range i.Hooks {
			g.outf("  %s\n", esc(hookSummary(h)))
		}
	}
	for _, l := range []struct {
		title string
		msgs  []string
	}{{"Warnings", i.Warnings}, {"Errors", i.Errors}} {
		if len(l.msgs) > 0 {
			g.outf("\n%s:\n", l.title)
			for _, m := range l.msgs {
				g.outf("  %s\n", m)
			}
		}
	}
	if !details {
		return
	}
	g.outf("\nResource list:\n")
	byRes := map[string][]string{}
	for _, it := range items {
		name := it.Name
		if it.Namespace != "" {
			name = it.Namespace + "/" + it.Name
		}
		byRes[it.Resource] = append(byRes[it.Resource], name)
	}
	for _, res := range slices.Sorted(maps.Keys(byRes)) {
		g.outf("  %s:\n", res)
		for _, n := range byRes[res] {
			g.outf("    - %s\n", n)
		}
	}
}

func newClusterLogsCmd(g *globalOptions, _ *clusterOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "logs NAME",
		Short: "Print the log of a cluster backup",
		Args:  exactArgs(1, "a backup name"),
		RunE: onBackup(g, func(ctx context.Context, b *backupHandle) error {
			g.outMu.Lock()
			defer g.outMu.Unlock()
			return catalog.WriteBackupLog(ctx, b.r, b.entry.Snapshot, g.env.stdout)
		}),
	}
}

func newClusterDownloadCmd(g *globalOptions, _ *clusterOptions) *cobra.Command {
	var output string
	var force bool
	cmd := &cobra.Command{
		Use:   "download NAME",
		Short: "Write a backup's manifests as a .tar.gz",
		Long: `Write the /resources tree of a backup -- one YAML file per object,
resources/cluster/<resource>/<name>.yaml and
resources/namespaces/<namespace>/<resource>/<name>.yaml -- as a gzip-compressed
tar archive, by default to NAME-data.tar.gz (--output - writes to standard
output).`,
		Args: exactArgs(1, "a backup name"),
		RunE: onBackup(g, func(ctx context.Context, b *backupHandle) error {
			// Damaged trees and unusable names are left out, named on
			// stderr, and make the download exit 1 at the end.
			dl := &damageLog{g: g}
			if output == "-" {
				// Not under outMu: the warnings take it; nothing else writes stdout now.
				return dl.result(catalog.WriteResourcesArchive(ctx, b.r, b.entry.Snapshot, g.env.stdout, dl.damaged))
			}
			if output == "" {
				output = b.entry.Name + "-data.tar.gz"
			}
			if _, err := os.Lstat(output); err == nil && !force {
				return fmt.Errorf("%s exists: remove it, choose another file with --output, or give --force", output)
			}
			// Mode 0600 (CreateTemp's): the archive holds the Secrets.
			tmp, err := os.CreateTemp(filepath.Dir(output), ".cairn-download-*")
			if err != nil {
				return fmt.Errorf("download: %w", err)
			}
			defer os.Remove(tmp.Name()) // after the rename: a no-op
			w := bufio.NewWriterSize(tmp, 1<<20)
			err = catalog.WriteResourcesArchive(ctx, b.r, b.entry.Snapshot, w, dl.damaged)
			if err == nil {
				err = w.Flush()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp.Name(), output)
			}
			if err != nil {
				return fmt.Errorf("download to %s: %w", output, err)
			}
			fi, _ := os.Stat(output)
			g.printf("backup %s written to %s (%s)\n", b.entry.Name, output, formatBytes(uint64(fi.Size())))
			return dl.result(nil)
		}),
	}
	// Not -o: that is the global --option (as in restic).
	cmd.Flags().StringVar(&output, "output", "", "write to this `file` (\"-\" = standard output; default NAME-data.tar.gz)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite the output file if it exists")
	return cmd
}

func newClusterDeleteCmd(g *globalOptions, _ *clusterOptions) *cobra.Command {
	var prune bool
	var pf pruneFlags
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a cluster backup (and, with --prune, free its data)",
		Long: `Delete a cluster backup: its snapshot is removed, and the snapshots its
node agents saved of its pod volumes (tagged volume-of=NAME). The data it alone used
stays in the repository until a prune: give --prune, or run ` + "`cairn prune`" + ` later.`,
		Args: exactArgs(1, "a backup name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := g.declareWrite("cluster delete", exclusiveLock); err != nil {
				return err
			}
			if prune {
				if _, err := pf.options(0); err != nil {
					return err
				}
			}
			b, err := openBackup(ctx, g, args[0])
			if err != nil {
				return err
			}
			defer b.r.Close()
			unlock, err := g.lock(ctx, b.r, true)
			if err != nil {
				return err
			}
			defer unlock()
			sn := b.entry.Snapshot
			if err := catalog.DeleteBackup(ctx, b.r, sn); err != nil {
				return err
			}
			removed := map[repo.ID]bool{sn.ID: true}
			// The pod volumes' own snapshots belong to the backup too.
			vols, err := snapshot.ListSnapshots(ctx, b.r, snapshot.Filter{Tags: []string{layout.TagVolumeOf + b.entry.Name}}, nil)
			if err != nil {
				return err
			}
			for _, v := range vols {
				if err := catalog.DeleteBackup(ctx, b.r, v); err != nil {
					return err
				}
				removed[v.ID] = true
			}
			g.printf("backup %s deleted (snapshot %s removed", b.entry.Name, sn.ID.Str())
			if len(vols) > 0 {
				g.printf(", and %s of its pod volumes", plural(len(vols), "snapshot"))
			}
			g.printf(")\n")
			if !prune {
				g.printf("its data stays in the repository until `cairn prune` runs\n")
				return nil
			}
			g.printf("\n")
			return runPrune(ctx, g, b.r, &pf, false, removed)
		},
	}
	cmd.Flags().BoolVar(&prune, "prune", false, "then remove the data no snapshot uses any more (as `cairn prune`)")
	pf.add(cmd.Flags())
	return cmd
}

// describeVolume prints one volume of a backup: a line, and with details
// where its data came from.
func describeVolume(g *globalOptions, v layout.VolumeInfo, details bool) {
	result := v.Result
	if result == "" {
		result = layout.VolumeCompleted
	}
	line := fmt.Sprintf("  %s/%s %s: %s", v.Namespace, v.Pod, v.Volume, result)
	switch {
	case v.Error != "":
		line += " (" + v.Error + ")"
	case v.Reason != "":
		line += " (" + v.Reason + ")"
	default:
		line += fmt.Sprintf(", %s, %s", plural(int(v.Files), "file"), formatBytes(v.Bytes))
		if v.BytesAdded > 0 || v.Snapshot != "" {
			line += ", " + formatBytes(v.BytesAdded) + " added"
		}
	}
	g.outf("%s\n", line)
	if !details {
		return
	}
	var parts []string
	add := func(k, val string) {
		if val != "" {
			parts = append(parts, k+" "+val)
		}
	}
	if v.PVC != "" {
		add("claim", v.Namespace+"/"+v.PVC)
	}
	add("PV", v.PV)
	add("storage class", v.StorageClass)
	add("size", v.Size)
	add("node", v.Node)
	if len(v.Snapshot) >= 8 {
		add("volume snapshot", v.Snapshot[:8])
	}
	if v.Result == "" || v.Result == layout.VolumeCompleted {
		add("path", path.Join(layout.VolumesPath, v.Namespace, v.Pod, v.Volume))
	}
	if len(parts) > 0 {
		g.outf("      %s\n", strings.Join(parts, ", "))
	}
}
