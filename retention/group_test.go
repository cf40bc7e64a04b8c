package retention

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Duration
		str  string
		err  string
	}{
		{in: "1y2m3d4h", want: Duration{1, 2, 3, 4}, str: "1y2m3d4h"},
		{in: "30d", want: Duration{Days: 30}, str: "30d"},
		{in: "24h", want: Duration{Hours: 24}, str: "24h"},
		{in: "4h1y", want: Duration{Years: 1, Hours: 4}, str: "1y4h"},
		{in: "0d", want: Duration{}, str: ""},
		{in: "", err: "empty"},
		{in: "1x", err: "unknown unit"},
		{in: "2d3", err: "no unit after 3"},
		{in: "y", err: "expected a number"},
		{in: "-1d", err: "expected a number"},
		{in: "1h1h", err: "given twice"},
		{in: "99999999999999999999d", err: "out of range"},
	} {
		got, err := ParseDuration(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseDuration(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("ParseDuration(%q) = %+v (%q), %v; want %+v (%q)", tc.in, got, got.String(), err, tc.want, tc.str)
		}
	}
	// Calendar arithmetic, as time.AddDate does it.
	if got := (Duration{Months: 1}).Before(at("2023-03-31 10:00:00")); !got.Equal(at("2023-03-03 10:00:00")) {
		t.Errorf("March 31st minus a month = %v", got)
	}
}

func TestParseTTL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"720h", 720 * time.Hour, false},
		{"30d", 30 * 24 * time.Hour, false},
		{"1.5d", 36 * time.Hour, false},
		{"90m", 90 * time.Minute, false},
		{"0h", 0, true},
		{"-3d", 0, true},
		{"soon", 0, true},
		{"3w", 0, true},
		{"1d12h", 36 * time.Hour, false},
		{" 2h ", 2 * time.Hour, false},
		{"0", 0, false}, // never expires
		{"0d", 0, true},
		{"", 0, true},
		{"d", 0, true},
		{"3dd", 0, true},
		{"1d-2h", 0, true},
		{"1h30d", 0, true},
	} {
		got, err := ParseTTL(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseTTL(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestParseGroupBy(t *testing.T) {
	for in, want := range map[string]GroupBy{
		"host,paths":      DefaultGroupBy,
		"":                {},
		"tags":            {Tags: true},
		"host, tags,path": {Host: true, Tags: true, Paths: true},
	} {
		got, err := ParseGroupBy(in)
		if err != nil || got != want {
			t.Errorf("ParseGroupBy(%q) = %+v, %v", in, got, err)
		}
	}
	if _, err := ParseGroupBy("host,user"); err == nil || !strings.Contains(err.Error(), `"user"`) {
		t.Errorf("bad field: %v", err)
	}
}

func TestGroupSnapshots(t *testing.T) {
	sns := []Snapshot{
		{ID: "1", Hostname: "h2", Paths: []string{"/b", "/a"}, Tags: []string{"y", "x"}},
		{ID: "2", Hostname: "h1", Paths: []string{"/a", "/b"}, Tags: []string{"x", "y"}},
		{ID: "3", Hostname: "h1", Paths: []string{"/a"}},
		{ID: "4", Hostname: "h2", Paths: []string{"/a", "/b"}},
	}
	keys := func(gs []Group) []string {
		var out []string
		for _, g := range gs {
			out = append(out, g.Key.String()+"="+strings.Join(idsOf(g.Snapshots), ","))
		}
		return out
	}
	for _, tc := range []struct {
		by   GroupBy
		want []string
	}{
		{DefaultGroupBy, []string{"host [h1], paths [/a]=3", "host [h1], paths [/a, /b]=2", "host [h2], paths [/a, /b]=1,4"}},
		{GroupBy{Tags: true}, []string{"tags []=3,4", "tags [x, y]=1,2"}},
		{GroupBy{Host: true}, []string{"host [h1]=2,3", "host [h2]=1,4"}},
		{GroupBy{}, []string{"=1,2,3,4"}},
	} {
		if got := keys(GroupSnapshots(sns, tc.by)); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %q\nwant %q", tc.by, got, tc.want)
		}
	}
}

func TestPlanGroupsAndExpiry(t *testing.T) {
	now := at("2024-06-01 00:00:00")
	past, future := ExpiryTag(now.Add(-time.Hour)), ExpiryTag(now.Add(time.Hour))
	sns := []Snapshot{
		{ID: "h1-old", Hostname: "h1", Time: at("2024-05-01 00:00:00")},
		{ID: "h1-new", Hostname: "h1", Time: at("2024-05-03 00:00:00"), Tags: []string{past}},
		{ID: "h1-mid", Hostname: "h1", Time: at("2024-05-02 00:00:00"), Tags: []string{future}},
		{ID: "h2-a", Hostname: "h2", Time: at("2024-05-01 00:00:00"), Tags: []string{past}},
		{ID: "h2-b", Hostname: "h2", Time: at("2024-05-02 00:00:00")},
	}
	ids := func(grs []GroupResult, f func(GroupResult) []Snapshot) []string {
		var out []string
		for _, g := range grs {
			out = append(out, strings.Join(idsOf(f(g)), ","))
		}
		return out
	}
	keep := func(g GroupResult) []Snapshot { return g.Keep }
	remove := func(g GroupResult) []Snapshot { return g.Remove }

	// Policy only: expiry tags are ordinary tags.
	grs := Plan(sns, Options{Policy: Policy{Last: 1}, GroupBy: DefaultGroupBy})
	if got := ids(grs, keep); !slices.Equal(got, []string{"h1-new", "h2-b"}) {
		t.Errorf("keep-last 1: kept %v", got)
	}
	// Expired only: expired snapshots go, the rest stays.
	grs = Plan(sns, Options{GroupBy: DefaultGroupBy, Expired: true, Now: now})
	if got := ids(grs, remove); !slices.Equal(got, []string{"h1-new", "h2-a"}) {
		t.Errorf("--expired: removed %v", got)
	}
	if got := ids(grs, keep); !slices.Equal(got, []string{"h1-mid,h1-old", "h2-b"}) {
		t.Errorf("--expired: kept %v", got)
	}
	if grs[0].Reasons[0].Matches[0] != "not expired" || len(grs[0].Expired) != 1 {
		t.Errorf("--expired: reasons %+v, expired %+v", grs[0].Reasons, grs[0].Expired)
	}
	// Both: the policy is applied to what did not expire.
	grs = Plan(sns, Options{Policy: Policy{Last: 1}, GroupBy: GroupBy{}, Expired: true, Now: now})
	if len(grs) != 1 {
		t.Fatalf("%d groups", len(grs))
	}
	if got := idsOf(grs[0].Keep); !slices.Equal(got, []string{"h1-mid"}) {
		t.Errorf("--expired --keep-last 1: kept %v", got)
	}
	if got := idsOf(grs[0].Remove); !slices.Equal(got, []string{"h1-new", "h2-b", "h1-old", "h2-a"}) {
		t.Errorf("--expired --keep-last 1: removed %v", got)
	}
}

func TestExpiry(t *testing.T) {
	when := time.Date(2025, 1, 31, 12, 0, 0, 500, time.FixedZone("x", 3600))
	tag := ExpiryTag(when)
	if tag != "expires=2025-01-31T11:00:00Z" || !IsExpiryTag(tag) {
		t.Fatalf("ExpiryTag = %q", tag)
	}
	got, ok := ParseExpiry([]string{"daily", tag})
	if !ok || !got.Equal(when.Truncate(time.Second)) {
		t.Fatalf("ParseExpiry = %v, %v", got, ok)
	}
	if _, ok := ParseExpiry([]string{"expires=tomorrow", "x"}); ok {
		t.Error("a malformed expiry tag counts")
	}
	// Several: the latest wins.
	later := ExpiryTag(when.AddDate(0, 1, 0))
	if got, _ := ParseExpiry([]string{later, tag}); !got.Equal(when.AddDate(0, 1, 0).Truncate(time.Second)) {
		t.Errorf("two expiry tags: %v", got)
	}
	sn := Snapshot{Tags: []string{tag}}
	for _, tc := range []struct {
		now  time.Time
		want bool
	}{
		{when.Add(-time.Second), false},
		{when.Truncate(time.Second), true},
		{when.Add(time.Hour), true},
	} {
		if got := Expired(sn, tc.now); got != tc.want {
			t.Errorf("Expired at %v = %v", tc.now, got)
		}
	}
	if Expired(Snapshot{Tags: []string{"expires="}}, when) || Expired(Snapshot{}, when) {
		t.Error("a snapshot without a valid expiry tag expired")
	}
}
