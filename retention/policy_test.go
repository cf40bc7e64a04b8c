package retention

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// hourlyYear is one snapshot per hour through 2023 (UTC): 8760 snapshots.
func hourlyYear() []Snapshot {
	var sns []Snapshot
	start := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	for t := start; t.Year() == 2023; t = t.Add(time.Hour) {
		sns = append(sns, Snapshot{ID: fmt.Sprintf("h%05d", len(sns)), Time: t, Hostname: "host", Paths: []string{"/data"}})
	}
	return sns
}

// at parses "2006-01-02 15:04:05" in UTC, or RFC 3339 with a zone.
func at(s string) time.Time {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t
	}
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

func snaps(times ...string) []Snapshot {
	var sns []Snapshot
	for i, s := range times {
		sns = append(sns, Snapshot{ID: fmt.Sprintf("s%02d", i), Time: at(s), Hostname: "host"})
	}
	return sns
}

func dailyAtNoon(days ...string) []string {
	var out []string
	for _, d := range days {
		out = append(out, d+" 12:00:00")
	}
	return out
}

// kept formats the kept snapshots' times ("01-02 15:04" within the year of
// the newest, else with the year) for compact golden lists.
func keptTimes(res Result) []string {
	var out []string
	for _, sn := range res.Keep {
		out = append(out, sn.Time.Format("2006-01-02 15:04:05"))
	}
	return out
}

func TestApplyGolden(t *testing.T) {
	year := hourlyYear()
	boundary := snaps(dailyAtNoonRange("2020-12-25", "2021-01-10")...)
	gaps := snaps(dailyAtNoon("2024-01-01", "2024-01-02", "2024-03-15", "2024-06-30")...)
	dups := snaps("2024-05-05 09:59:00", "2024-05-05 10:00:05", "2024-05-05 10:00:30", "2024-05-05 10:00:59")
	zones := []Snapshot{
		{ID: "a", Time: at("2024-03-11T00:30:00+02:00")}, // 22:30 UTC, but the 11th where it was made
		{ID: "b", Time: at("2024-03-10T22:10:00Z")},
		{ID: "c", Time: at("2024-03-10T23:30:00+02:00")}, // 21:30 UTC: the 10th, like b
	}
	d := func(s string) Duration {
		v, err := ParseDuration(s)
		if err != nil {
			panic(err)
		}
		return v
	}
	tests := []struct {
		name   string
		sns    []Snapshot
		p      Policy
		keep   []string // kept times, newest first; nil: see nKeep
		nKeep  int
		reason map[string][]string // time -> expected matches
	}{
		{name: "last 3", sns: year, p: Policy{Last: 3},
			keep:   []string{"2023-12-31 23:00:00", "2023-12-31 22:00:00", "2023-12-31 21:00:00"},
			reason: map[string][]string{"2023-12-31 21:00:00": {"last snapshot"}}},
		{name: "hourly 2", sns: year, p: Policy{Hourly: 2},
			keep: []string{"2023-12-31 23:00:00", "2023-12-31 22:00:00"}},
		{name: "daily 3", sns: year, p: Policy{Daily: 3},
			keep: []string{"2023-12-31 23:00:00", "2023-12-30 23:00:00", "2023-12-29 23:00:00"}},
		// 2023-12-31 is a Sunday: the last snapshot of each ISO week.
		{name: "weekly 3", sns: year, p: Policy{Weekly: 3},
			keep: []string{"2023-12-31 23:00:00", "2023-12-24 23:00:00", "2023-12-17 23:00:00"}},
		{name: "monthly 3", sns: year, p: Policy{Monthly: 3},
			keep: []string{"2023-12-31 23:00:00", "2023-11-30 23:00:00", "2023-10-31 23:00:00"}},
		{name: "yearly 5 with one year", sns: year, p: Policy{Yearly: 5},
			keep: []string{"2023-12-31 23:00:00"}},
		{name: "daily unlimited", sns: year, p: Policy{Daily: Unlimited}, nKeep: 365},
		{name: "last unlimited", sns: year, p: Policy{Last: Unlimited}, nKeep: 8760},
		{name: "monthly unlimited", sns: year, p: Policy{Monthly: Unlimited, Daily: 1}, nKeep: 12},
		// Strictly newer than newest-2h: 21:00 itself is out.
		{name: "within 2h", sns: year, p: Policy{Within: d("2h")},
			keep:   []string{"2023-12-31 23:00:00", "2023-12-31 22:00:00"},
			reason: map[string][]string{"2023-12-31 22:00:00": {"within 2h"}}},
		{name: "within 2d", sns: year, p: Policy{Within: d("2d")}, nKeep: 48},
		{name: "within-daily 3d", sns: year, p: Policy{WithinDaily: d("3d")},
			keep:   []string{"2023-12-31 23:00:00", "2023-12-30 23:00:00", "2023-12-29 23:00:00"},
			reason: map[string][]string{"2023-12-29 23:00:00": {"daily within 3d"}}},
		// Dec 31 minus one month is "Nov 31", i.e. Dec 1: weeks back to the
		// one of Dec 3 are inside, that week only from Dec 2 00:00 on.
		{name: "within-weekly 1m", sns: year, p: Policy{WithinWeekly: d("1m")},
			keep: []string{"2023-12-31 23:00:00", "2023-12-24 23:00:00", "2023-12-17 23:00:00", "2023-12-10 23:00:00", "2023-12-03 23:00:00"}},
		{name: "within-monthly 1y", sns: year, p: Policy{WithinMonthly: d("1y")}, nKeep: 12},
		{name: "within-hourly 1d2h", sns: year, p: Policy{WithinHourly: d("1d2h")}, nKeep: 26},
		{name: "within-yearly 1y", sns: year, p: Policy{WithinYearly: d("1y")}, keep: []string{"2023-12-31 23:00:00"}},
		{name: "daily 2 weekly 2", sns: year, p: Policy{Daily: 2, Weekly: 2},
			keep: []string{"2023-12-31 23:00:00", "2023-12-30 23:00:00", "2023-12-24 23:00:00"},
			reason: map[string][]string{
				"2023-12-31 23:00:00": {"daily snapshot", "weekly snapshot"},
				"2023-12-30 23:00:00": {"daily snapshot"},
				"2023-12-24 23:00:00": {"weekly snapshot"},
			}},
		{name: "all rules", sns: year, p: Policy{Last: 1, Hourly: 1, Daily: 1, Weekly: 1, Monthly: 1, Yearly: 1, Within: d("1h"), WithinHourly: d("1h"), WithinDaily: d("1d"), WithinWeekly: d("1d"), WithinMonthly: d("1d"), WithinYearly: d("1d")},
			keep: []string{"2023-12-31 23:00:00"},
			reason: map[string][]string{"2023-12-31 23:00:00": {"within 1h", "last snapshot", "hourly snapshot", "daily snapshot", "weekly snapshot", "monthly snapshot", "yearly snapshot",
				"hourly within 1h", "daily within 1d", "weekly within 1d", "monthly within 1d", "yearly within 1d"}}},
		// ISO week 53 of 2020 runs from Mon Dec 28 to Sun Jan 3.
		{name: "weekly across the year", sns: boundary, p: Policy{Weekly: 3},
			keep: []string{"2021-01-10 12:00:00", "2021-01-03 12:00:00", "2020-12-27 12:00:00"}},
		{name: "yearly across the year", sns: boundary, p: Policy{Yearly: 2},
			keep: []string{"2021-01-10 12:00:00", "2020-12-31 12:00:00"}},
		{name: "gaps daily", sns: gaps, p: Policy{Daily: 3},
			keep: []string{"2024-06-30 12:00:00", "2024-03-15 12:00:00", "2024-01-02 12:00:00"}},
		{name: "gaps monthly", sns: gaps, p: Policy{Monthly: 2},
			keep: []string{"2024-06-30 12:00:00", "2024-03-15 12:00:00"}},
		{name: "gaps within 3m", sns: gaps, p: Policy{Within: d("3m")},
			keep: []string{"2024-06-30 12:00:00"}},
		{name: "gaps within-daily 6m", sns: gaps, p: Policy{WithinDaily: d("6m")}, nKeep: 4},
		{name: "same minute hourly", sns: dups, p: Policy{Hourly: 10},
			keep: []string{"2024-05-05 10:00:59", "2024-05-05 09:59:00"}},
		{name: "same minute last", sns: dups, p: Policy{Last: 2},
			keep: []string{"2024-05-05 10:00:59", "2024-05-05 10:00:30"}},
		{name: "same minute within 1h", sns: dups, p: Policy{Within: d("1h")}, nKeep: 4},
		// Buckets use each snapshot's own clock: a was made on the 11th.
		{name: "zones daily", sns: zones, p: Policy{Daily: 5},
			keep: []string{"2024-03-11 00:30:00", "2024-03-10 22:10:00"}},
		{name: "zones hourly", sns: zones, p: Policy{Hourly: 5}, nKeep: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// These tables hold restic 0.14–0.16's decisions.
			tc.p.NoKeepOldest = true
			res := Apply(tc.sns, tc.p)
			got := keptTimes(res)
			if tc.keep != nil && !slices.Equal(got, tc.keep) {
				t.Errorf("kept %v\nwant %v", got, tc.keep)
			}
			if tc.keep == nil && len(got) != tc.nKeep {
				t.Errorf("kept %d snapshots, want %d", len(got), tc.nKeep)
			}
			if len(res.Keep)+len(res.Remove) != len(tc.sns) {
				t.Errorf("keep %d + remove %d != %d snapshots", len(res.Keep), len(res.Remove), len(tc.sns))
			}
			if len(res.Reasons) != len(res.Keep) {
				t.Fatalf("%d reasons for %d kept snapshots", len(res.Reasons), len(res.Keep))
			}
			for i, r := range res.Reasons {
				if r.Snapshot.ID != res.Keep[i].ID || len(r.Matches) == 0 {
					t.Errorf("reason %d: %+v does not match kept %s", i, r, res.Keep[i].ID)
				}
				if want, ok := tc.reason[r.Snapshot.Time.Format("2006-01-02 15:04:05")]; ok && !slices.Equal(r.Matches, want) {
					t.Errorf("%s kept for %q, want %q", r.Snapshot.Time, r.Matches, want)
				}
			}
			for i := 1; i < len(res.Remove); i++ {
				if res.Remove[i].Time.After(res.Remove[i-1].Time) {
					t.Fatalf("remove list not newest first")
				}
			}
		})
	}
}

func dailyAtNoonRange(from, to string) []string {
	var out []string
	for d := at(from + " 12:00:00"); !d.After(at(to + " 12:00:00")); d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format("2006-01-02 15:04:05"))
	}
	return out
}

func TestApplyTags(t *testing.T) {
	sns := []Snapshot{
		{ID: "ab", Time: at("2024-01-05 00:00:00"), Tags: []string{"x", "b", "a"}},
		{ID: "a", Time: at("2024-01-04 00:00:00"), Tags: []string{"a"}},
		{ID: "c", Time: at("2024-01-03 00:00:00"), Tags: []string{"c"}},
		{ID: "abc", Time: at("2024-01-02 00:00:00"), Tags: []string{"a", "b", "c"}},
		{ID: "none", Time: at("2024-01-01 00:00:00")},
	}
	res := Apply(sns, Policy{KeepTags: [][]string{{"a", "b"}, {"c"}}})
	want := map[string][]string{
		"ab":  {"has tags [a, b]"},
		"c":   {"has tags [c]"},
		"abc": {"has tags [a, b]", "has tags [c]"},
	}
	if len(res.Reasons) != len(want) {
		t.Fatalf("kept %d, want %d: %+v", len(res.Reasons), len(want), res.Reasons)
	}
	for _, r := range res.Reasons {
		if !slices.Equal(r.Matches, want[r.Snapshot.ID]) {
			t.Errorf("%s: matches %q, want %q", r.Snapshot.ID, r.Matches, want[r.Snapshot.ID])
		}
	}
	if ids := idsOf(res.Remove); !slices.Equal(ids, []string{"a", "none"}) {
		t.Errorf("removed %v", ids)
	}
	// Tags and counts together: keep-last counts tagged snapshots too.
	res = Apply(sns, Policy{Last: 1, KeepTags: [][]string{{"c"}}})
	if ids := idsOf(res.Keep); !slices.Equal(ids, []string{"ab", "c", "abc"}) {
		t.Errorf("kept %v", ids)
	}
}

func idsOf(sns []Snapshot) []string {
	var out []string
	for _, sn := range sns {
		out = append(out, sn.ID)
	}
	return out
}

func TestApplyCountersAndTies(t *testing.T) {
	res := Apply(hourlyYear(), Policy{Last: 1, Daily: 2, Hourly: Unlimited})
	if len(res.Reasons) < 2 {
		t.Fatalf("kept %d", len(res.Reasons))
	}
	if c := res.Reasons[0].Counters; len(c) != 2 || c["daily"] != 1 || c["hourly"] != -1 {
		t.Errorf("first counters %v, want daily 1, hourly -1 (last used up)", c)
	}
	if c := res.Reasons[len(res.Reasons)-1].Counters; len(c) != 1 || c["hourly"] != -1 {
		t.Errorf("oldest kept counters %v, want only hourly -1 (daily used up)", c)
	}
	// Equal times: the order does not depend on the input order.
	a := Snapshot{ID: "a", Time: at("2024-01-01 00:00:00")}
	b := Snapshot{ID: "b", Time: a.Time}
	for _, in := range [][]Snapshot{{a, b}, {b, a}} {
		if res := Apply(in, Policy{Last: 1}); res.Keep[0].ID != "a" {
			t.Errorf("tie kept %s, want a", res.Keep[0].ID)
		}
	}
	// An empty policy keeps everything.
	res = Apply(snaps("2024-01-01 00:00:00", "2024-01-02 00:00:00"), Policy{})
	if len(res.Keep) != 2 || res.Reasons[0].Matches[0] != "policy is empty" {
		t.Errorf("empty policy: %+v", res)
	}
	if res := Apply(nil, Policy{Last: 1}); len(res.Keep)+len(res.Remove) != 0 {
		t.Errorf("nothing in, something out: %+v", res)
	}
}

func TestPolicyValidateAndString(t *testing.T) {
	for _, tc := range []struct {
		p    Policy
		err  string
		desc string
	}{
		{p: Policy{Last: -2}, err: "--keep-last -2"},
		{p: Policy{Weekly: -5}, err: "--keep-weekly -5"},
		{p: Policy{KeepTags: [][]string{{}}}, err: "--keep-tag"},
		{p: Policy{KeepTags: [][]string{{"a", ""}}}, err: "--keep-tag"},
		{p: Policy{}, desc: "keep all snapshots (no policy)"},
		{p: Policy{Last: 2, Daily: 7, Monthly: Unlimited}, desc: "keep 2 latest, 7 daily, all monthly snapshots"},
		{p: Policy{Within: Duration{Years: 1}, WithinDaily: Duration{Days: 3}, KeepTags: [][]string{{"a", "b"}}},
			desc: "keep all snapshots within 1y of the newest, daily snapshots within 3d of the newest, snapshots tagged [a, b]"},
	} {
		err := tc.p.Validate()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: error %v, want %q", tc.p, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", tc.p, err)
		}
		if got := tc.p.String(); got != tc.desc {
			t.Errorf("String() = %q, want %q", got, tc.desc)
		}
	}
}

// Since restic 0.17 a bucket rule that is not used up also keeps the
// oldest snapshot. Expected results are what restic 0.19.1 decided for the
// same five snapshots.
func TestApplyKeepOldest(t *testing.T) {
	at := func(id, ts string) Snapshot {
		tm, err := time.ParseInLocation("2006-01-02 15:04", ts, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		return Snapshot{ID: id, Time: tm}
	}
	sns := []Snapshot{at("a", "2026-01-01 08:00"), at("b", "2026-01-01 20:00"), at("c", "2026-01-02 09:00"),
		at("d", "2026-01-03 09:00"), at("e", "2026-01-03 10:00")}
	d := func(s string) Duration {
		v, err := ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		p    Policy
		want map[string][]string // kept ID -> reasons
	}{
		{Policy{Daily: 5}, map[string][]string{"e": {"daily snapshot"}, "c": {"daily snapshot"}, "b": {"daily snapshot"}, "a": {"oldest daily snapshot"}}},
		{Policy{Daily: Unlimited}, map[string][]string{"e": {"daily snapshot"}, "c": {"daily snapshot"}, "b": {"daily snapshot"}, "a": {"oldest daily snapshot"}}},
		{Policy{Daily: 2}, map[string][]string{"e": {"daily snapshot"}, "c": {"daily snapshot"}}},
		{Policy{Last: 2}, map[string][]string{"e": {"last snapshot"}, "d": {"last snapshot"}}},
		{Policy{Weekly: 3}, map[string][]string{"e": {"weekly snapshot"}, "a": {"oldest weekly snapshot"}}},
		{Policy{Monthly: 2}, map[string][]string{"e": {"monthly snapshot"}, "a": {"oldest monthly snapshot"}}},
		{Policy{Hourly: 3}, map[string][]string{"e": {"hourly snapshot"}, "d": {"hourly snapshot"}, "c": {"hourly snapshot"}}},
		{Policy{Hourly: 5, Daily: 1}, map[string][]string{"e": {"hourly snapshot", "daily snapshot"}, "d": {"hourly snapshot"}, "c": {"hourly snapshot"}, "b": {"hourly snapshot"}, "a": {"hourly snapshot"}}},
		{Policy{Last: 5, Daily: 5}, map[string][]string{"e": {"last snapshot", "daily snapshot"}, "d": {"last snapshot"}, "c": {"last snapshot", "daily snapshot"}, "b": {"last snapshot", "daily snapshot"}, "a": {"last snapshot", "oldest daily snapshot"}}},
		{Policy{Daily: 5, Weekly: 5}, map[string][]string{"e": {"daily snapshot", "weekly snapshot"}, "c": {"daily snapshot"}, "b": {"daily snapshot"}, "a": {"oldest daily snapshot", "oldest weekly snapshot"}}},
		{Policy{WithinDaily: d("10y")}, map[string][]string{"e": {"daily within 10y"}, "c": {"daily within 10y"}, "b": {"daily within 10y"}, "a": {"oldest daily within 10y"}}},
		{Policy{WithinDaily: d("1d")}, map[string][]string{"e": {"daily within 1d"}}},
		{Policy{WithinDaily: d("2d")}, map[string][]string{"e": {"daily within 2d"}, "c": {"daily within 2d"}, "b": {"daily within 2d"}}},
		{Policy{Within: d("1d")}, map[string][]string{"e": {"within 1d"}, "d": {"within 1d"}}},
		{Policy{Yearly: 1}, map[string][]string{"e": {"yearly snapshot"}}},
	}
	for _, tc := range tests {
		res := Apply(sns, tc.p)
		got := map[string][]string{}
		for _, r := range res.Reasons {
			got[r.Snapshot.ID] = r.Matches
		}
		if len(got) != len(tc.want) || len(res.Keep)+len(res.Remove) != len(sns) {
			t.Errorf("%v: kept %v, want %v", tc.p, got, tc.want)
			continue
		}
		for id, reasons := range tc.want {
			if !slices.Equal(got[id], reasons) {
				t.Errorf("%v: %s kept for %q, want %q", tc.p, id, got[id], reasons)
			}
		}
	}
}
