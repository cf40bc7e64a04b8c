package schedule

import (
	"testing"

	"github.com/cairn-backup/cairn/retention"
)

// FuzzRetentionPolicy: a schedule's retention comes back from the
// cluster, written by anyone who may edit the CronJob. Nothing may panic;
// an accepted policy validates and is never empty unless the map was.
func FuzzRetentionPolicy(f *testing.F) {
	for _, kv := range [][2]string{{"keep-last", "7"}, {"keep-daily", "unlimited"}, {"keep-within", "1y2m3d4h"}, {"keep-within-weekly", "-1d"},
		{"keep-last", "-2"}, {"keep-everything", "1"}, {"keep-hourly", "99999999999999999999"}, {"keep-yearly", " 3 "}} {
		f.Add(kv[0], kv[1])
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		p, err := RetentionPolicy(map[string]string{k: v})
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("%s=%q accepted but invalid: %v", k, v, err)
		}
		if again, err := RetentionPolicy(map[string]string{k: v}); err != nil || again.String() != p.String() {
			t.Fatalf("%s=%q: not the same policy twice: %v", k, v, err)
		}
		if !p.Empty() && p.String() == (retention.Policy{}).String() {
			t.Fatalf("%s=%q: a rule that says nothing", k, v)
		}
	})
}
