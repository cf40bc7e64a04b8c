package maintenance

import (
	"testing"
	"time"
)

// FuzzParse: /maintenance.json is read from a repository anyone with the
// password can write. Nothing may panic; what parses names a run and its
// log can be written.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"name":"maintenance-20261206030000","cluster":"c","start":"2026-12-06T03:00:00Z","end":"2026-12-06T03:00:01Z","forgotten":[{"id":"ab","kind":"backup","backup":"b","reason":"expired"}],"prune":{"size_before":10,"size_after":4,"freed":6}}`))
	f.Add([]byte(`{"name":""}`))
	f.Add([]byte(`{"name":"x","forgotten":[{"id":"","kind":"volume"}],"schedules":[{"schedule":"s","protected":"p"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := Parse(data)
		if err != nil {
			return
		}
		if rec.Name == "" {
			t.Fatal("accepted a record without a name")
		}
		_ = Log(rec)
		for _, fg := range rec.Forgotten {
			_ = fg.Describe()
		}
		_ = rec.End.Sub(rec.Start) > time.Hour
	})
}
