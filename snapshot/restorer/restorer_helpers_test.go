package restorer

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/internal/snaptest"
)

// Helpers for the restorer tests; snapshots are built by snaptest, without
// the archiver.

const rtPassword = snaptest.Password

func rtNewRepo(t testing.TB, version, packSize int) (*repo.Repository, string) {
	t.Helper()
	return snaptest.NewRepo(t, version, packSize)
}

func rtOpenRepo(t testing.TB, dir string) *repo.Repository {
	t.Helper()
	return snaptest.OpenRepo(t, dir)
}

func rtBackup(t testing.TB, r *repo.Repository, src string) *snapshot.Snapshot {
	t.Helper()
	return snaptest.Backup(t, r, src)
}

// rtRestore runs Restore and collects the failed paths.
func rtRestore(t testing.TB, r *repo.Repository, sn *snapshot.Snapshot, subpath string, opts RestoreOptions) (int, map[string]error) {
	t.Helper()
	failed := map[string]error{}
	opts.OnError = func(p string, err error) { failed[p] = err }
	n, err := Restore(context.Background(), r, sn, subpath, opts)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if n != len(failed) {
		t.Errorf("Restore returned %d failures, OnError saw %d: %v", n, len(failed), failed)
	}
	return n, failed
}

// under returns where the full snapshot path p lands below target.
func under(target, p string) string {
	return filepath.Join(target, strings.TrimPrefix(p, "/"))
}
