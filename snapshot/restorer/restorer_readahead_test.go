package restorer

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/snapshot/internal/snaptest"
	"github.com/cairn-backup/cairn/snapshot/match"
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

// A restore of one deep file reads ahead only the directories leading to
// it, not the whole snapshot.
func TestRestoreIncludeReadsOnlyItsPath(t *testing.T) {
	repoDir, src, sn := snaptest.ManyDirs(t, 300)
	var deepest string
	snaptest.Must(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Count(p, "/") > strings.Count(deepest, "/") {
			deepest = p
		}
		return err
	}))
	inc, err := match.NewMatcher([]string{deepest}, false)
	snaptest.Must(t, err)
	r, slow := snaptest.OpenSlow(t, repoDir, time.Millisecond)
	planned := -1
	setHook(t, func(*restorer) { planned = slow.Loads() })
	slow.Reset()
	target := filepath.Join(t.TempDir(), "target")
	rtRestore(t, r, sn, "", RestoreOptions{Target: target, Include: inc})
	if dirs := strings.Count(deepest, "/"); planned > dirs {
		t.Errorf("planning the restore of %s loaded %d trees, want at most %d", deepest, planned, dirs)
	}
	testutil.CompareTrees(t, filepath.Dir(deepest), filepath.Dir(under(target, deepest)), testutil.CompareOptions{
		IgnoreRootMeta: true,
		Ignore:         func(rel string) bool { return rel != filepath.Base(deepest) },
	})
}
