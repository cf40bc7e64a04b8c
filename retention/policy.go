package retention

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Snapshot is what the policy needs to know about a snapshot.
type Snapshot struct {
	ID       string
	Time     time.Time // in the time zone the snapshot was recorded in
	Hostname string
	Paths    []string
	Tags     []string
}

// Unlimited as a count keeps every snapshot of a bucket rule.
const Unlimited = -1

// Policy is a retention policy. Counts are the number of buckets to keep (0:
// rule not used, Unlimited: all); the Within* spans are measured back from
// the newest snapshot of the group.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int

	Within        Duration // keep every snapshot this close to the newest
	WithinHourly  Duration // keep the newest snapshot of each hour within the span
	WithinDaily   Duration
	WithinWeekly  Duration
	WithinMonthly Duration
	WithinYearly  Duration

	// KeepTags keeps a snapshot that has all tags of any one list.
	KeepTags [][]string

	// NoKeepOldest gives restic 0.16's decisions: a bucket rule that is not
	// used up does not also keep the oldest snapshot (restic 0.17+ does).
	NoKeepOldest bool
}

// Empty reports whether the policy has no rule at all.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 &&
		p.Within.Zero() && p.WithinHourly.Zero() && p.WithinDaily.Zero() && p.WithinWeekly.Zero() &&
		p.WithinMonthly.Zero() && p.WithinYearly.Zero() && len(p.KeepTags) == 0
}

// Validate rejects counts below Unlimited and empty tag lists (they would
// match nothing, and quietly keeping nothing is never what was meant).
func (p Policy) Validate() error {
	for _, c := range p.counts() {
		if c.n < Unlimited {
			return fmt.Errorf("--keep-%s %d: a count must be a positive number, or -1 for unlimited", c.flag, c.n)
		}
	}
	for _, tl := range p.KeepTags {
		if len(tl) == 0 || slices.Contains(tl, "") {
			return fmt.Errorf("--keep-tag %q: a tag list needs at least one tag and no empty tags", strings.Join(tl, ","))
		}
	}
	return nil
}

type countRule struct {
	n      int
	flag   string // option name without --keep-
	reason string
	bucket func(t time.Time, nr int) int
}

func (p Policy) counts() []countRule {
	return []countRule{
		{p.Last, "last", "last snapshot", func(_ time.Time, nr int) int { return nr }},
		{p.Hourly, "hourly", "hourly snapshot", hourBucket},
		{p.Daily, "daily", "daily snapshot", dayBucket},
		{p.Weekly, "weekly", "weekly snapshot", weekBucket},
		{p.Monthly, "monthly", "monthly snapshot", monthBucket},
		{p.Yearly, "yearly", "yearly snapshot", yearBucket},
	}
}

type withinRule struct {
	d      Duration
	name   string
	bucket func(t time.Time, nr int) int
}

func (p Policy) withins() []withinRule {
	return []withinRule{
		{p.WithinHourly, "hourly", hourBucket},
		{p.WithinDaily, "daily", dayBucket},
		{p.WithinWeekly, "weekly", weekBucket},
		{p.WithinMonthly, "monthly", monthBucket},
		{p.WithinYearly, "yearly", yearBucket},
	}
}

// Buckets use the snapshot's own clock (the zone it was recorded in).
func hourBucket(t time.Time, _ int) int {
	return t.Year()*1_000_000 + int(t.Month())*10_000 + t.Day()*100 + t.Hour()
}
func dayBucket(t time.Time, _ int) int { return t.Year()*10_000 + int(t.Month())*100 + t.Day() }
func weekBucket(t time.Time, _ int) int {
	y, w := t.ISOWeek()
	return y*100 + w
}
func monthBucket(t time.Time, _ int) int { return t.Year()*100 + int(t.Month()) }
func yearBucket(t time.Time, _ int) int  { return t.Year() }

// String describes the policy for humans: "keep 7 daily, 4 weekly snapshots,
// all snapshots within 1y of the newest, snapshots tagged [a]".
func (p Policy) String() string {
	if p.Empty() {
		return "keep all snapshots (no policy)"
	}
	var parts []string
	for _, c := range p.counts() {
		switch {
		case c.n == Unlimited:
			parts = append(parts, "all "+c.flag)
		case c.n > 0 && c.flag == "last":
			parts = append(parts, fmt.Sprintf("%d latest", c.n))
		case c.n > 0:
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.flag))
		}
	}
	var out []string
	if len(parts) > 0 {
		out = append(out, strings.Join(parts, ", ")+" snapshots")
	}
	if !p.Within.Zero() {
		out = append(out, "all snapshots within "+p.Within.String()+" of the newest")
	}
	for _, w := range p.withins() {
		if !w.d.Zero() {
			out = append(out, fmt.Sprintf("%s snapshots within %s of the newest", w.name, w.d))
		}
	}
	for _, tl := range p.KeepTags {
		out = append(out, "snapshots tagged "+tagListString(tl))
	}
	return "keep " + strings.Join(out, ", ")
}

func tagListString(tl []string) string { return "[" + strings.Join(tl, ", ") + "]" }

// KeepReason says why a snapshot was kept. Counters hold, for each count
// rule still running, how many buckets it may keep after this snapshot
// (rules that are used up or not given are left out).
type KeepReason struct {
	Snapshot Snapshot
	Matches  []string
	Counters map[string]int
}

// Result is the decision for one group. Keep and Remove are newest first;
// Reasons has one entry per kept snapshot, in the order of Keep.
type Result struct {
	Keep, Remove []Snapshot
	Reasons      []KeepReason
}

// SortNewestFirst orders snapshots by time, newest first; equal times are
// ordered by ID so that the decision does not depend on listing order.
func SortNewestFirst(sns []Snapshot) {
	slices.SortStableFunc(sns, func(a, b Snapshot) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// Apply decides which snapshots of one group p keeps. Walking from the
// newest snapshot to the oldest, each count rule keeps a snapshot whose
// bucket (hour, day, ISO week, month, year, or for "last" the snapshot
// itself) differs from the previous one it saw, until its count is used up;
// the within-bucket rules do the same, without a count, for snapshots
// within their span of the newest; Within keeps everything newer than the
// newest minus the span, KeepTags every snapshot with all tags of a list.
// An empty policy keeps everything.
func Apply(list []Snapshot, p Policy) Result {
	sns := slices.Clone(list)
	SortNewestFirst(sns)
	var res Result
	if p.Empty() {
		for _, sn := range sns {
			res.Keep = append(res.Keep, sn)
			res.Reasons = append(res.Reasons, KeepReason{Snapshot: sn, Matches: []string{"policy is empty"}})
		}
		return res
	}
	if len(sns) == 0 {
		return res
	}
	latest := sns[0].Time

	counts := p.counts()
	lastCount := make([]int, len(counts))
	withins := p.withins()
	lastWithin := make([]int, len(withins))
	for i := range lastCount {
		lastCount[i] = -1
	}
	for i := range lastWithin {
		lastWithin[i] = -1
	}

	oldestNr := len(sns) - 1
	matchedOldest := map[string]bool{} // rules that kept the oldest snapshot themselves
	for nr, sn := range sns {
		var matches []string
		for _, tl := range p.KeepTags {
			if hasAllTags(sn.Tags, tl) {
				matches = append(matches, "has tags "+tagListString(tl))
			}
		}
		if !p.Within.Zero() && sn.Time.After(p.Within.Before(latest)) {
			matches = append(matches, "within "+p.Within.String())
		}
		for i := range counts {
			c := &counts[i]
			if c.n == 0 {
				continue
			}
			if b := c.bucket(sn.Time, nr); b != lastCount[i] {
				lastCount[i] = b
				if c.n > 0 {
					c.n--
				}
				matches = append(matches, c.reason)
				if nr == oldestNr {
					matchedOldest[c.reason] = true
				}
			}
		}
		for i, w := range withins {
			if w.d.Zero() || !sn.Time.After(w.d.Before(latest)) {
				continue
			}
			if b := w.bucket(sn.Time, nr); b != lastWithin[i] {
				lastWithin[i] = b
				reason := fmt.Sprintf("%s within %s", w.name, w.d)
				matches = append(matches, reason)
				if nr == oldestNr {
					matchedOldest[reason] = true
				}
			}
		}
		if len(matches) == 0 {
			res.Remove = append(res.Remove, sn)
			continue
		}
		counters := map[string]int{}
		for _, c := range counts {
			if c.n != 0 {
				counters[c.flag] = c.n
			}
		}
		res.Keep = append(res.Keep, sn)
		res.Reasons = append(res.Reasons, KeepReason{Snapshot: sn, Matches: matches, Counters: counters})
	}
	if !p.NoKeepOldest {
		keepOldest(&res, sns[oldestNr], p, counts, withins, latest, matchedOldest)
	}
	return res
}

// keepOldest does what restic does since 0.17: a bucket rule that is not
// used up when the oldest snapshot is reached (or a within-bucket rule whose
// span holds the oldest snapshot) also keeps the oldest snapshot, so that
// the history reaches back as far as it can.
func keepOldest(res *Result, oldest Snapshot, p Policy, counts []countRule, withins []withinRule, latest time.Time, matched map[string]bool) {
	var extra []string
	given := p.counts()
	for i, c := range counts {
		if c.flag == "last" || given[i].n == 0 || c.n == 0 || matched[c.reason] {
			continue
		}
		extra = append(extra, "oldest "+c.reason)
	}
	for _, w := range withins {
		reason := fmt.Sprintf("%s within %s", w.name, w.d)
		if w.d.Zero() || !oldest.Time.After(w.d.Before(latest)) || matched[reason] {
			continue
		}
		extra = append(extra, "oldest "+reason)
	}
	if len(extra) == 0 {
		return
	}
	for i := range res.Reasons {
		if res.Reasons[i].Snapshot.ID == oldest.ID {
			res.Reasons[i].Matches = append(res.Reasons[i].Matches, extra...)
			return
		}
	}
	res.Remove = slices.DeleteFunc(res.Remove, func(sn Snapshot) bool { return sn.ID == oldest.ID })
	res.Keep = append(res.Keep, oldest)
	res.Reasons = append(res.Reasons, KeepReason{Snapshot: oldest, Matches: extra, Counters: map[string]int{}})
}

func hasAllTags(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}
