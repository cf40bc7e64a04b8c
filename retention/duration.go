// Package retention decides which snapshots a retention policy keeps. It is
// pure logic: it sees small snapshot descriptions and returns decisions,
// with the same semantics as restic's `forget`.
package retention

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a calendar span in restic's syntax "1y2m3d4h": years, months,
// days and hours, each applied with calendar arithmetic (a month back from
// March 31st is March 3rd, as time.AddDate does).
type Duration struct {
	Years, Months, Days, Hours int
}

// ParseDuration reads a sequence of <number><unit> with the units y, m, d
// and h, each at most once, e.g. "1y6m", "30d", "12h". Negative numbers are
// refused: a negative span would reach into the future and keep nothing.
func ParseDuration(s string) (Duration, error) {
	var d Duration
	bad := func(why string) (Duration, error) {
		return Duration{}, fmt.Errorf("invalid duration %q: %s; use numbers with the units y, m, d and h, e.g. \"1y6m\" or \"30d\"", s, why)
	}
	if s == "" {
		return bad("it is empty")
	}
	seen := map[byte]bool{}
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return bad(fmt.Sprintf("expected a number at %q", rest))
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil {
			return bad("number out of range")
		}
		if i == len(rest) {
			return bad(fmt.Sprintf("no unit after %d", n))
		}
		unit := rest[i]
		if seen[unit] {
			return bad(fmt.Sprintf("unit %q given twice", unit))
		}
		seen[unit] = true
		switch unit {
		case 'y':
			d.Years = n
		case 'm':
			d.Months = n
		case 'd':
			d.Days = n
		case 'h':
			d.Hours = n
		default:
			return bad(fmt.Sprintf("unknown unit %q", unit))
		}
		rest = rest[i+1:]
	}
	return d, nil
}

// String formats d the way ParseDuration reads it, leaving out zero
// components ("1y3d"); the zero Duration is "".
func (d Duration) String() string {
	var b strings.Builder
	for _, c := range []struct {
		n    int
		unit string
	}{{d.Years, "y"}, {d.Months, "m"}, {d.Days, "d"}, {d.Hours, "h"}} {
		if c.n != 0 {
			b.WriteString(strconv.Itoa(c.n) + c.unit)
		}
	}
	return b.String()
}

// Zero reports whether d spans nothing (the option was not given).
func (d Duration) Zero() bool { return d == Duration{} }

// Before returns t moved back by d.
func (d Duration) Before(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-time.Duration(d.Hours) * time.Hour)
}

// ParseTTL reads a time to live, for `backup --ttl` and `cluster backup
// --ttl` alike: a Go duration ("720h", "90m"), a number of days ("30d",
// "1.5d"), or days followed by a Go duration ("1d12h"). "0" means never
// expires and returns 0; any other spelling of zero, or a negative time,
// is an error (a typo should not keep a backup forever).
func ParseTTL(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "0" {
		return 0, nil
	}
	bad := fmt.Errorf("invalid time to live %q: use a duration like \"720h\", \"30d\" or \"1d12h\" (\"0\": never expires)", s)
	var total time.Duration
	rest := t
	if days, after, ok := strings.Cut(t, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || math.IsNaN(n) {
			return 0, bad
		}
		h := n * 24 * float64(time.Hour)
		if h >= math.MaxInt64 {
			// time.Duration holds about 292 years; a bigger float converts
			// to an undefined value (negative here, saturated elsewhere).
			return 0, fmt.Errorf("time to live %q is too long: at most %d days", s, int64(math.MaxInt64/int64(24*time.Hour)))
		}
		total, rest = time.Duration(h), after
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || (t != rest && d < 0) {
			return 0, bad
		}
		if d > 0 && total > math.MaxInt64-d {
			return 0, fmt.Errorf("time to live %q is too long", s)
		}
		total += d
	}
	if total <= 0 {
		return 0, errors.New("the time to live must be positive, e.g. \"30d\" (\"0\": never expires)")
	}
	return total, nil
}
