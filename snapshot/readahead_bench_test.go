package snapshot_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/internal/snaptest"
)

// BenchmarkWalkRemote walks about 1000 directories of a repository whose
// every pack read takes 2 ms, as over a network, with a cold tree cache:
// "sequential" loads one tree at a time (the walk before read-ahead),
// "readahead" is Walk.
func BenchmarkWalkRemote(b *testing.B) {
	dir, _, sn := snaptest.ManyDirs(b, 1000)
	r, slow := snaptest.OpenSlow(b, dir, benchDelay)
	b.Run("sequential", func(b *testing.B) {
		for b.Loop() {
			seqWalk(b, snapshot.NewTreeLoader(r, 4096), *sn.Tree)
		}
	})
	b.Run("readahead", func(b *testing.B) {
		slow.Reset()
		for b.Loop() {
			if _, err := walkLines(context.Background(), snapshot.NewTreeLoader(r, 4096), *sn.Tree); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(slow.MaxInFlight()), "max-in-flight")
	})
}

// benchDelay is the time of one pack read (0 compares a local repository).
var benchDelay = 2 * time.Millisecond
