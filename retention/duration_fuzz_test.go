package retention

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseDuration (--keep-within*): no panic, and an accepted duration
// prints as something that parses back to it.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"1y6m", "30d", "12h", "1y2m3d4h", "0d", "5", "d", "1d1d", "-1d", "99999999999999999999d", "1x", "4h3d2m1y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d.Years < 0 || d.Months < 0 || d.Days < 0 || d.Hours < 0 {
			t.Fatalf("%q parsed to negative %+v", s, d)
		}
		d.Before(time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)) // must not panic, however large
		if d.Zero() {
			return // "0d" prints as ""
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, d, d.String(), back, err)
		}
	})
}

// FuzzParseTTL (backup --ttl): no panic; what is accepted is positive and,
// for a number of days, that many days; what is refused as not positive
// was not positive.
func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"720h", "30d", "1.5d", "90m", " 7d ", "0d", "-1h", "d", "NaNd", "1e3d", "1h30m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTTL(s)
		if strings.TrimSpace(s) == "0" {
			if d != 0 || err != nil {
				t.Fatalf("ParseTTL(%q) = %v, %v; want 0 (never)", s, d, err)
			}
			return
		}
		days, isDays := strings.CutSuffix(strings.TrimSpace(s), "d")
		n, nerr := strconv.ParseFloat(days, 64)
		if err != nil {
			if isDays && nerr == nil && n*24*float64(time.Hour) >= math.MaxInt64 && !strings.Contains(err.Error(), "too long") {
				t.Fatalf("ParseTTL(%q): %v, want a too-long error", s, err)
			}
			if isDays && nerr == nil && n > 0 && strings.Contains(err.Error(), "must be positive") {
				t.Fatalf("ParseTTL(%q): %v, but %g days is positive", s, err, n)
			}
			return
		}
		if d <= 0 {
			t.Fatalf("ParseTTL(%q) = %v, not positive", s, d)
		}
		if isDays && nerr == nil {
			want := n * 24 * float64(time.Hour)
			if math.Abs(float64(d)-want) > 1+want*1e-9 {
				t.Fatalf("ParseTTL(%q) = %v, want %g days", s, d, n)
			}
		}
	})
}

// FuzzParseExpiry: expiry tags never panic the parser, and every time an
// ExpiryTag can hold comes back from its tag.
func FuzzParseExpiry(f *testing.F) {
	f.Add("expires=2025-01-31T12:00:00Z", int64(1738324800))
	f.Add("expires=2025-01-31T12:00:00+99:00", int64(0))
	f.Add("expires=", int64(-62135596800))
	f.Add("other", int64(253402300799))
	f.Fuzz(func(t *testing.T, tag string, unix int64) {
		ParseExpiry([]string{tag, "expires=x", tag})
		when := time.Unix(unix, 0)
		if when.Year() < 0 || when.Year() > 9999 {
			return // RFC 3339 holds four-digit years only
		}
		got, ok := ParseExpiry([]string{ExpiryTag(when)})
		if !ok || !got.Equal(when) {
			t.Fatalf("ExpiryTag(%v) = %q parses to %v, %v", when, ExpiryTag(when), got, ok)
		}
	})
}
