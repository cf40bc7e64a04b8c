package restorer

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/snapshot/internal/snaptest"
	"github.com/cairn-backup/cairn/tests/testutil"
)

// Planning a restore from a repository where every read takes a while
// loads trees several at a time, and restores the same tree.
func TestRestoreReadsTreesAhead(t *testing.T) {
	repoDir, src, sn := snaptest.ManyDirs(t, 300)
	r, slow := snaptest.OpenSlow(t, repoDir, time.Millisecond)
	planned := -1
	setHook(t, func(*restorer) { planned = slow.MaxInFlight() })
	slow.Reset()
	target := filepath.Join(t.TempDir(), "target")
	rtRestore(t, r, sn, "", RestoreOptions{Target: target})
	if planned < 2 {
		t.Errorf("planning had at most %d tree load in flight", planned)
	}
	if n := testutil.CompareTrees(t, src, under(target, src), testutil.CompareOptions{CompareOwner: true}); n < 900 {
		t.Errorf("compared only %d entries", n)
	}
}
