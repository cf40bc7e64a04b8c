package archiver

import (
	"testing"
	"time"

	"github.com/cairn-backup/cairn/snapshot/internal/snaptest"
)

// An unchanged re-backup into a repository where every read takes a while
// loads the parent's trees several at a time, and yields the same trees.
func TestBackupReadsParentTreesAhead(t *testing.T) {
	repoDir, src, _ := snaptest.ManyDirs(t, 300)
	arSettleAtimes(t, src)
	sn1, _ := arBackup(t, snaptest.OpenRepo(t, repoDir), []string{src}, ArchiveOptions{})

	r, slow := snaptest.OpenSlow(t, repoDir, time.Millisecond)
	slow.Reset()
	sn2, a2 := arBackup(t, r, []string{src}, ArchiveOptions{Parent: sn1})
	loads, inFlight := slow.Loads(), slow.MaxInFlight()
	s := sn2.Summary
	if a2.BytesRead() != 0 || s.DirsNew != 0 || s.DirsUnmodified < 300 {
		t.Errorf("unchanged re-backup: read %d bytes, summary %+v", a2.BytesRead(), s)
	}
	// (The directories above src may change meanwhile: other tests.)
	if n1, n2 := arLookup(t, r, *sn1.Tree, src), arLookup(t, r, *sn2.Tree, src); *n1.Subtree != *n2.Subtree {
		t.Errorf("unchanged re-backup: tree of %s %v, parent's %v", src, n2.Subtree.Str(), n1.Subtree.Str())
	}
	if inFlight < 2 {
		t.Errorf("at most %d parent tree load in flight", inFlight)
	}
	// Each directory needs its parent tree once; none is loaded twice.
	if dirs := int(s.DirsUnmodified + s.DirsChanged); loads > dirs {
		t.Errorf("%d tree loads for %d directories", loads, dirs)
	}
}
