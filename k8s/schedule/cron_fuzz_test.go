package schedule

import (
	"testing"
	"time"
)

// FuzzTranslate: schedules come from users and back from the cluster (the
// CronJob and its annotation); none may panic the parser, and the next
// run of an accepted one is after the start, on a minute, and one the
// expression accepts.
func FuzzTranslate(f *testing.F) {
	for _, s := range []string{"@every 6h", "@every 7h", "CRON_TZ=Europe/Paris 0 3 * * *", "TZ=UTC @weekly",
		"0,30 9-17/2 ? * 0", "0 0 30 2 *", "*/0 * * * *", "5/15 * 1-7 jan-mar mon-fri", "0 0 * * 7", "@reboot", ""} {
		f.Add(s)
	}
	start := time.Date(2026, 12, 5, 23, 27, 13, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := Translate(s)
		if err != nil {
			return
		}
		c, err := Parse(tr.Expr)
		if err != nil {
			t.Fatalf("%q translated to %q, which does not parse: %v", s, tr.Expr, err)
		}
		next := c.Next(start, nil)
		if next.IsZero() {
			return // never, e.g. 30 February
		}
		if !next.After(start) || next.Second() != 0 || next.Sub(start) > 5*366*24*time.Hour {
			t.Fatalf("%q: next run %s after %s", tr.Expr, next, start)
		}
		if again := c.Next(next.Add(-time.Minute), nil); !again.Equal(next) {
			t.Fatalf("%q: next after %s is %s, not %s", tr.Expr, next.Add(-time.Minute), again, next)
		}
	})
}
