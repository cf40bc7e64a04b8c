package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// snapshotFilterFlags are restic's --host/--tag/--path selectors.
type snapshotFilterFlags struct {
	hosts, tags, paths []string
}

func (f *snapshotFilterFlags) add(fs *pflag.FlagSet, what string) {
	fs.StringArrayVarP(&f.hosts, "host", "H", nil, "only consider snapshots of this `host`"+what+" (can be repeated)")
	fs.StringArrayVar(&f.tags, "tag", nil, "only consider snapshots with this `taglist` (\"a,b\" needs both)"+what+" (can be repeated)")
	fs.StringArrayVar(&f.paths, "path", nil, "only consider snapshots that include this `path`"+what+" (can be repeated)")
}

func (f *snapshotFilterFlags) filter() snapshot.Filter {
	paths := make([]string, len(f.paths))
	for i, p := range f.paths {
		paths[i] = cleanAbs(p)
	}
	return snapshot.Filter{Hosts: f.hosts, Tags: f.tags, Paths: paths}
}

// cleanAbs makes p absolute and clean, as snapshots record their paths.
func cleanAbs(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}

// snapshotJSON is a snapshot as `snapshots --json` prints it.
type snapshotJSON struct {
	*snapshot.Snapshot
	ID      string `json:"id"`
	ShortID string `json:"short_id"`
	// Expires is when the snapshot's time to live (backup --ttl) runs out.
	Expires string `json:"expires,omitempty"`
}

func newSnapshotJSON(sn *snapshot.Snapshot) snapshotJSON {
	out := snapshotJSON{Snapshot: sn, ID: sn.ID.String(), ShortID: sn.ID.Str()}
	if t, ok := retention.ParseExpiry(sn.Tags); ok {
		out.Expires = t.Format(time.RFC3339)
	}
	return out
}

func toSnapshotJSON(sns []*snapshot.Snapshot) []snapshotJSON {
	out := make([]snapshotJSON, 0, len(sns))
	for _, sn := range sns {
		out = append(out, newSnapshotJSON(sn))
	}
	return out
}

func newSnapshotsCmd(g *globalOptions) *cobra.Command {
	var filt snapshotFilterFlags
	var latest int
	cmd := &cobra.Command{
		Use:   "snapshots [flags] [SNAPSHOT-ID...]",
		Short: "List snapshots",
		Args:  cobra.ArbitraryArgs,
		RunE: onRepo(g, func(ctx context.Context, r *repo.Repository, args []string) error {
			// Unreadable snapshot files are named on stderr; the others are
			// listed, and the command exits 1.
			dl := &damageLog{g: g}
			sns, err := namedOrAllSnapshots(ctx, r, args, filt.filter(), dl)
			if err != nil {
				return err
			}
			if latest > 0 {
				sns = latestPerGroup(sns, latest)
			}
			if g.json {
				return dl.result(g.printJSON(toSnapshotJSON(sns), false))
			}
			printSnapshotTable(g, sns)
			return dl.result(nil)
		}),
	}
	filt.add(cmd.Flags(), "")
	cmd.Flags().IntVar(&latest, "latest", 0, "only show the last `n` snapshots for each host and path set")
	return cmd
}

// latestPerGroup keeps the newest n snapshots of each host and path set,
// in the original (oldest first) order.
func latestPerGroup(sns []*snapshot.Snapshot, n int) []*snapshot.Snapshot {
	count := map[string]int{}
	keep := make([]bool, len(sns))
	for i := len(sns) - 1; i >= 0; i-- {
		paths := slices.Clone(sns[i].Paths)
		slices.Sort(paths)
		key := sns[i].Hostname + "\x00" + strings.Join(paths, "\x00")
		if count[key] < n {
			count[key]++
			keep[i] = true
		}
	}
	var out []*snapshot.Snapshot
	for i, sn := range sns {
		if keep[i] {
			out = append(out, sn)
		}
	}
	return out
}

// printSnapshotTable prints the table restic users know: one row per
// snapshot, extra lines for further paths.
func printSnapshotTable(g *globalOptions, sns []*snapshot.Snapshot) {
	// An Expires column only when some snapshot has a time to live; the
	// expiry tags then show there instead of among the tags.
	withExpiry := slices.ContainsFunc(sns, func(sn *snapshot.Snapshot) bool {
		_, ok := retention.ParseExpiry(sn.Tags)
		return ok
	})
	header := []string{"ID", "Time", "Host", "Tags", "Paths"}
	if withExpiry {
		header = []string{"ID", "Time", "Host", "Tags", "Expires", "Paths"}
	}
	rows := [][]string{}
	for _, sn := range sns {
		paths := sn.Paths
		if len(paths) == 0 {
			paths = []string{""}
		}
		tags, expires := sn.Tags, ""
		if withExpiry {
			tags = slices.DeleteFunc(slices.Clone(sn.Tags), func(tag string) bool {
				_, ok := retention.ParseExpiry([]string{tag})
				return ok
			})
			if t, ok := retention.ParseExpiry(sn.Tags); ok {
				expires = t.Local().Format("2006-01-02 15:04:05")
			}
		}
		for i, p := range paths {
			row := make([]string, len(header))
			if i == 0 {
				row = []string{sn.ID.Str(), sn.Time.Local().Format("2006-01-02 15:04:05"), sn.Hostname, strings.Join(tags, ",")}
				if withExpiry {
					row = append(row, expires)
				}
				row = append(row, p)
			} else {
				row[len(row)-1] = p
			}
			rows = append(rows, row)
		}
	}
	printTable(g, header, rows)
	word := "snapshots"
	if len(sns) == 1 {
		word = "snapshot"
	}
	g.outf("%d %s\n", len(sns), word)
}

// printTable prints left-aligned columns with a rule under the header and
// after the last row.
func printTable(g *globalOptions, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = len(h)
	}
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(cells []string) string {
		var b strings.Builder
		for i, c := range cells {
			if i == len(cells)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c + strings.Repeat(" ", widths[i]-len([]rune(c))+2))
		}
		return strings.TrimRight(b.String(), " ") + "\n"
	}
	total := 0
	for _, w := range widths {
		total += w + 2
	}
	rule := strings.Repeat("-", total) + "\n"
	g.outf("%s%s", line(header), rule)
	for _, row := range rows {
		g.outf("%s", line(row))
	}
	g.outf("%s", rule)
}
