package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
)

// countValue is a --keep-* count: a number, or -1/"unlimited" for all.
type countValue struct{ n *int }

func (c countValue) String() string { return strconv.Itoa(*c.n) }
func (c countValue) Type() string   { return "n" }
func (c countValue) Set(s string) error {
	if s == "unlimited" {
		*c.n = retention.Unlimited
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < retention.Unlimited {
		return fmt.Errorf("want a number of snapshots, or -1 or \"unlimited\" for all")
	}
	*c.n = n
	return nil
}

type forgetFlags struct {
	policy  retention.Policy
	within  [6]string // within, within-hourly ... within-yearly
	tags    []string
	expired bool
	groupBy string
	hosts   []string
	filter  []string
	paths   []string
	dryRun  bool
	prune   bool
	pf      pruneFlags
}

var withinNames = [6]string{"keep-within", "keep-within-hourly", "keep-within-daily", "keep-within-weekly", "keep-within-monthly", "keep-within-yearly"}

func newForgetCmd(g *globalOptions) *cobra.Command {
	var f forgetFlags
	cmd := &cobra.Command{
		Use:   "forget [flags] [SNAPSHOT-ID...]",
		Short: "Remove snapshots by policy, by time to live or by ID",
		Long: `Remove snapshots, following a policy, their time to live or their IDs.

Snapshots are grouped (--group-by, default host,paths) and the --keep-*
policy is applied to each group with restic's semantics: from the newest
snapshot back, each rule keeps the newest snapshot of each hour/day/week/
month/year until its count is used up (-1 or "unlimited": no limit);
--keep-within* durations such as "1y2m3d4h" count back from the group's
newest snapshot. --expired removes snapshots whose time to live (backup
--ttl) has run out. Only snapshot files are deleted; prune (or --prune)
removes the data no snapshot needs any more.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runForget(cmd.Context(), g, &f, args)
		},
	}
	fs := cmd.Flags()
	p := &f.policy
	fs.VarP(countValue{&p.Last}, "keep-last", "l", "keep the last `n` snapshots (-1: all)")
	fs.VarP(countValue{&p.Hourly}, "keep-hourly", "H", "keep the last `n` hourly snapshots (-1: all)")
	fs.VarP(countValue{&p.Daily}, "keep-daily", "d", "keep the last `n` daily snapshots (-1: all)")
	fs.VarP(countValue{&p.Weekly}, "keep-weekly", "w", "keep the last `n` weekly snapshots (-1: all)")
	fs.VarP(countValue{&p.Monthly}, "keep-monthly", "m", "keep the last `n` monthly snapshots (-1: all)")
	fs.VarP(countValue{&p.Yearly}, "keep-yearly", "y", "keep the last `n` yearly snapshots (-1: all)")
	for i, name := range withinNames {
		what := strings.TrimPrefix(strings.TrimPrefix(name, "keep-within"), "-")
		if what == "" {
			what = "all"
		}
		fs.StringVar(&f.within[i], name, "", "keep "+what+" snapshots newer than `duration` (e.g. 1y5m7d2h) before the newest")
	}
	fs.StringArrayVar(&f.tags, "keep-tag", nil, "keep snapshots with all tags of this `taglist` (\"a,b\"; can be repeated)")
	fs.BoolVar(&f.expired, "expired", false, "remove snapshots whose time to live (backup --ttl) has run out")
	fs.BoolVar(&f.policy.NoKeepOldest, "no-keep-oldest", false, "do not also keep the oldest snapshot when a --keep-hourly..yearly rule is not used up (restic 0.16 and older)")
	fs.StringVarP(&f.groupBy, "group-by", "g", "host,paths", "apply the policy to each `group` of snapshots: host, paths and/or tags, or '' for one group")
	fs.StringArrayVar(&f.hosts, "host", nil, "only consider snapshots of this `host` (can be repeated)")
	fs.StringArrayVar(&f.filter, "tag", nil, "only consider snapshots with this `taglist` (\"a,b\" needs both; can be repeated)")
	fs.StringArrayVar(&f.paths, "path", nil, "only consider snapshots that include this `path` (can be repeated)")
	fs.BoolVarP(&f.dryRun, "dry-run", "n", false, "only print what would be removed")
	fs.BoolVar(&f.prune, "prune", false, "run prune afterwards if snapshots were removed")
	f.pf.add(fs)
	return cmd
}

// parsePolicy turns the flags into a policy and a grouping.
func (f *forgetFlags) parsePolicy() (retention.Policy, retention.GroupBy, error) {
	p := f.policy
	targets := []*retention.Duration{&p.Within, &p.WithinHourly, &p.WithinDaily, &p.WithinWeekly, &p.WithinMonthly, &p.WithinYearly}
	for i, s := range f.within {
		if s == "" {
			continue
		}
		d, err := retention.ParseDuration(s)
		if err != nil {
			return p, retention.GroupBy{}, fmt.Errorf("--%s: %w", withinNames[i], err)
		}
		*targets[i] = d
	}
	for _, tl := range f.tags {
		p.KeepTags = append(p.KeepTags, strings.Split(tl, ","))
	}
	if err := p.Validate(); err != nil {
		return p, retention.GroupBy{}, err
	}
	by, err := retention.ParseGroupBy(f.groupBy)
	return p, by, err
}

func runForget(ctx context.Context, g *globalOptions, f *forgetFlags, args []string) error {
	policy, groupBy, err := f.parsePolicy()
	if err != nil {
		return err
	}
	if len(args) > 0 && (!policy.Empty() || f.expired) {
		return errors.New("give either snapshot IDs or a policy (--keep-*, --expired), not both")
	}
	if len(args) == 0 && policy.Empty() && !f.expired {
		return errors.New("no policy given: nothing would be removed; give --keep-* options, --expired or snapshot IDs")
	}
	if f.prune {
		if _, err := f.pf.options(0); err != nil {
			return err
		}
	}
	if !f.dryRun {
		if err := g.declareWrite("forget", exclusiveLock); err != nil {
			return err
		}
	}
	r, release, err := g.openLocked(ctx, !f.dryRun)
	if err != nil {
		return err
	}
	defer release()

	filter := snapshot.Filter{Hosts: f.hosts, Tags: f.filter}
	for _, p := range f.paths {
		filter.Paths = append(filter.Paths, cleanAbs(p))
	}
	byID := map[string]*snapshot.Snapshot{}
	var groups []retention.GroupResult
	// Unreadable snapshot files are named, left alone, and make forget
	// exit 1 once it has done the rest.
	unreadable := &damageLog{g: g}
	if len(args) > 0 {
		gr := retention.GroupResult{}
		for _, a := range args {
			sn, err := snapshot.FindSnapshot(ctx, r, a, filter)
			if err != nil {
				return err
			}
			if byID[sn.ID.String()] == nil {
				byID[sn.ID.String()] = sn
				gr.Remove = append(gr.Remove, toRetention(sn))
			}
		}
		groups = append(groups, gr)
	} else {
		sns, err := snapshot.ListSnapshots(ctx, r, filter, unreadable.snapshot)
		if err != nil {
			return err
		}
		var rs []retention.Snapshot
		for _, sn := range sns {
			byID[sn.ID.String()] = sn
			rs = append(rs, toRetention(sn))
		}
		if !policy.Empty() {
			g.printf("applying policy: %s\n", policy)
		}
		groups = retention.Plan(rs, retention.Options{Policy: policy, GroupBy: groupBy, Expired: f.expired, Now: time.Now()})
	}

	if g.json {
		if err := g.printJSON(forgetJSONGroups(groups, byID), false); err != nil {
			return err
		}
	} else {
		printForgetGroups(g, groups, byID, len(args) > 0)
	}

	forgotten := map[repo.ID]bool{}
	for _, gr := range groups {
		for _, sn := range gr.Remove {
			forgotten[byID[sn.ID].ID] = true
		}
	}
	if f.dryRun {
		g.printf("dry run: would remove %s\n", plural(len(forgotten), "snapshot"))
	} else {
		n := 0
		for _, gr := range groups {
			for _, sn := range gr.Remove {
				h := repo.Handle{Type: repo.SnapshotFile, Name: sn.ID}
				if err := r.Backend().Remove(ctx, h); err != nil && !repo.IsNotExist(err) {
					return fmt.Errorf("remove snapshot %s: %w (%d removed before)", sn.ID[:8], err, n)
				}
				n++
				g.verbosef(1, "removed snapshot %s\n", sn.ID[:8])
			}
		}
		g.printf("removed %s\n", plural(n, "snapshot"))
	}
	if !f.prune || len(forgotten) == 0 {
		return unreadable.result(nil)
	}
	g.printf("\n")
	return unreadable.result(runPrune(ctx, g, r, &f.pf, f.dryRun, forgotten))
}

func toRetention(sn *snapshot.Snapshot) retention.Snapshot {
	return retention.Snapshot{ID: sn.ID.String(), Time: sn.Time, Hostname: sn.Hostname, Paths: sn.Paths, Tags: sn.Tags}
}
