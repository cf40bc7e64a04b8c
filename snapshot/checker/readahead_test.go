package checker

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/internal/snaptest"
)

// The used-blob walk over a repository where every read takes a while
// keeps more trees in flight than the four workers it had, and finds the
// same blobs.
func TestUsedBlobsLoadsInParallel(t *testing.T) {
	ctx := context.Background()
	repoDir, _, sn := snaptest.ManyDirs(t, 300)
	sns := []*snapshot.Snapshot{sn}
	want, err := UsedBlobs(ctx, snapshot.NewTreeLoader(snaptest.OpenRepo(t, repoDir), 16), sns, nil)
	must(t, err)

	r, slow := snaptest.OpenSlow(t, repoDir, 5*time.Millisecond)
	slow.Reset()
	got, err := UsedBlobs(ctx, snapshot.NewTreeLoader(r, 16), sns, nil)
	must(t, err)
	if !maps.Equal(got, want) || len(got) < 300 {
		t.Errorf("%d used blobs over a slow repository, %d over a local one", len(got), len(want))
	}
	if slow.MaxInFlight() <= 4 {
		t.Errorf("at most %d tree loads in flight", slow.MaxInFlight())
	}
}
