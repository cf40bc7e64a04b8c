package fusefs

import (
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// A restore record (k8s/restorelog) is a snapshot like any other under
// snapshots/, ids/, tags/ and hosts/, but never a backup: the backups'
// views leave it out.
func TestViewLeavesRestoreRecordsOutOfBackups(t *testing.T) {
	now := time.Now()
	tree := repo.Hash([]byte("tree"))
	backup := &snapshot.Snapshot{ID: repo.Hash([]byte("b")), Time: now.Add(-time.Hour), Tree: &tree, Hostname: "c1",
		Paths: []string{layout.SnapshotPath("c1")}, Tags: []string{layout.TagBackup + "app"}}
	record := &snapshot.Snapshot{ID: repo.Hash([]byte("r")), Time: now, Tree: &tree, Hostname: "c1",
		Paths: []string{layout.RestoreRecordPath("c1")}, Tags: []string{layout.TagRestoreRecord, layout.TagRestore + "app-1", layout.TagRestoreOf + "app"}}
	v := buildView([]*snapshot.Snapshot{backup, record})
	if len(v.backups) != 1 || v.backups[0].name != "app" || v.backups[0].sn != backup {
		t.Errorf("backups view: %+v", v.backups)
	}
	if len(v.sorted) != 2 || len(v.tags[layout.TagRestoreRecord]) != 1 || len(v.hosts["c1"]) != 2 {
		t.Errorf("record missing from the snapshot views: %d snapshots, tags %v", len(v.sorted), v.tags)
	}
}
