package retention

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// GroupBy selects which snapshot fields split snapshots into groups that a
// policy is applied to separately. The zero value puts all in one group.
type GroupBy struct {
	Host, Paths, Tags bool
}

// DefaultGroupBy is restic's default: per host and set of paths.
var DefaultGroupBy = GroupBy{Host: true, Paths: true}

// ParseGroupBy reads a comma-separated list of host, paths and tags; ""
// means no grouping.
func ParseGroupBy(s string) (GroupBy, error) {
	var g GroupBy
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "":
		case "host", "hosts":
			g.Host = true
		case "path", "paths":
			g.Paths = true
		case "tag", "tags":
			g.Tags = true
		default:
			return GroupBy{}, fmt.Errorf("invalid --group-by field %q: use host, paths and tags, separated by commas (or \"\" for one group)", f)
		}
	}
	return g, nil
}

// GroupKey is what the snapshots of a group share. Fields not grouped by are
// empty; Paths and Tags are sorted.
type GroupKey struct {
	Hostname string
	Paths    []string
	Tags     []string
}

func (k GroupKey) String() string {
	var parts []string
	if k.Hostname != "" {
		parts = append(parts, "host ["+k.Hostname+"]")
	}
	if k.Paths != nil {
		parts = append(parts, "paths ["+strings.Join(k.Paths, ", ")+"]")
	}
	if k.Tags != nil {
		parts = append(parts, "tags ["+strings.Join(k.Tags, ", ")+"]")
	}
	return strings.Join(parts, ", ")
}

func (g GroupBy) key(sn Snapshot) GroupKey {
	var k GroupKey
	if g.Host {
		k.Hostname = sn.Hostname
	}
	if g.Paths {
		k.Paths = sorted(sn.Paths)
	}
	if g.Tags {
		k.Tags = sorted(sn.Tags)
	}
	return k
}

func sorted(s []string) []string {
	out := append([]string{}, s...) // never nil: "grouped by, but none"
	slices.Sort(out)
	return out
}

func (k GroupKey) id() string {
	return k.Hostname + "\x00" + strings.Join(k.Paths, "\x01") + "\x00" + strings.Join(k.Tags, "\x01")
}

// Group is a set of snapshots with the same key, in input order.
type Group struct {
	Key       GroupKey
	Snapshots []Snapshot
}

// GroupSnapshots splits sns by g. Groups are ordered by host, then paths,
// then tags.
func GroupSnapshots(sns []Snapshot, g GroupBy) []Group {
	byID := map[string]int{}
	var groups []Group
	for _, sn := range sns {
		k := g.key(sn)
		i, ok := byID[k.id()]
		if !ok {
			i = len(groups)
			byID[k.id()] = i
			groups = append(groups, Group{Key: k})
		}
		groups[i].Snapshots = append(groups[i].Snapshots, sn)
	}
	slices.SortFunc(groups, func(a, b Group) int { return strings.Compare(a.Key.id(), b.Key.id()) })
	return groups
}

// GroupResult is the decision for one group. Expired lists the snapshots
// of Remove that were removed because their time to live ran out.
type GroupResult struct {
	Key GroupKey
	Result
	Expired []Snapshot
}

// Options for Plan.
type Options struct {
	Policy  Policy
	GroupBy GroupBy
	// Expired removes snapshots whose expiry tag (see ExpiryTag) is at or
	// before Now; the policy then decides about the others.
	Expired bool
	Now     time.Time
}

// Plan groups the snapshots and decides for each group which to keep.
// Without a policy and without Expired every snapshot is kept.
func Plan(sns []Snapshot, o Options) []GroupResult {
	var out []GroupResult
	for _, g := range GroupSnapshots(sns, o.GroupBy) {
		gr := GroupResult{Key: g.Key}
		live := g.Snapshots
		if o.Expired {
			live = nil
			for _, sn := range g.Snapshots {
				if Expired(sn, o.Now) {
					gr.Expired = append(gr.Expired, sn)
				} else {
					live = append(live, sn)
				}
			}
			SortNewestFirst(gr.Expired)
		}
		if o.Expired && o.Policy.Empty() {
			// Only the time to live decides: the rest stays.
			sorted := slices.Clone(live)
			SortNewestFirst(sorted)
			for _, sn := range sorted {
				gr.Keep = append(gr.Keep, sn)
				gr.Reasons = append(gr.Reasons, KeepReason{Snapshot: sn, Matches: []string{"not expired"}})
			}
		} else {
			gr.Result = Apply(live, o.Policy)
		}
		gr.Remove = append(gr.Remove, gr.Expired...)
		SortNewestFirst(gr.Remove)
		out = append(out, gr)
	}
	return out
}
