package catalog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/testutil"
)

// A backup name resolves to its newest snapshot; when some snapshot file
// cannot be read, it may be a newer backup of that name, so the lookup
// fails naming the file instead of passing an older backup off for it.
func TestFindBackupEntryUnreadable(t *testing.T) {
	ctx := context.Background()
	c := testutil.NewCrafted(t, filepath.Join(t.TempDir(), "repo"), "pw")
	root := c.Tree(c.File("f", []byte("x")))
	c.Flush()
	save := func(at time.Time) repo.ID {
		id, err := c.Repo.SaveJSONUnpacked(ctx, repo.SnapshotFile, map[string]any{
			"time": at, "tree": root, "paths": []string{"/"}, "hostname": "prod",
			"tags": []string{layout.TagBackup + "nightly"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	old, newest := save(t0), save(t0.Add(time.Hour))

	e, err := FindBackupEntry(ctx, c.Repo, "nightly")
	if err != nil || e.Snapshot.ID != newest {
		t.Fatalf("nightly: %+v %v, want snapshot %s", e, err, newest.Str())
	}

	p := filepath.Join(c.RepoDir, "snapshots", newest.String())
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err = FindBackupEntry(ctx, c.Repo, "nightly")
	if err == nil {
		t.Fatalf("nightly with its newest snapshot damaged resolved to %s", e.Snapshot.ID.Str())
	}
	if !errors.Is(err, snapshot.ErrUnreadableSnapshot) || !strings.Contains(err.Error(), newest.Str()) || !strings.Contains(err.Error(), "by ID") {
		t.Errorf("error does not name the damaged file or the way out: %v", err)
	}
	// By ID, the readable one is still reachable.
	if e, err := FindBackupEntry(ctx, c.Repo, old.String()[:8]); err != nil || e.Snapshot.ID != old {
		t.Errorf("by ID: %+v %v", e, err)
	}
}

// A backup.json that a damaged or hostile snapshot makes huge (one blob
// named again and again) is refused once the bound is passed, not read
// into memory whole.
func TestReadBackupInfoBounded(t *testing.T) {
	ctx := context.Background()
	c := testutil.NewCrafted(t, filepath.Join(t.TempDir(), "repo"), "pw")
	blob := c.Blob([]byte(strings.Repeat(" ", 1<<20)))
	n := testutil.CNode{Name: layout.BackupInfoFile, Type: "file", Mode: 0o644, ModTime: time.Now(), Size: uint64(maxBackupInfo) + 2<<20}
	for range maxBackupInfo>>20 + 2 {
		n.Content = append(n.Content, blob)
	}
	id := c.Snapshot(c.Tree(n), "/")
	if err := c.Repo.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.LoadSnapshot(ctx, c.Repo, id)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ReadBackupInfo(ctx, c.Repo, sn)
	if !errors.Is(err, errTooLarge) {
		t.Fatalf("huge backup.json: %v", err)
	}
}
