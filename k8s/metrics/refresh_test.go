package metrics

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/k8s/catalog/catalogtest"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
)

// The refresh reads what catalogtest wrote through another Repository (as
// the agent sees backups the CLI made): phases counted, the newest
// Completed backup per schedule (a PartiallyFailed one later does not
// count), the pack files' size; a forgotten backup leaves the gauges.
func TestRefresh(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	kdf := repo.Options{KDF: crypto.KDFParams{N: 1 << 10, R: 8, P: 1}}
	be, err := repo.CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := repo.Init(ctx, be, "pw", 2, kdf)
	if err != nil {
		t.Fatal(err)
	}
	w.LoadIndex(ctx)

	be2, err := repo.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be2, "pw", kdf)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	m := NewAgent()
	f := &Refresher{M: m, Repo: r}
	if err := f.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	text := scrape(t, m)
	for _, want := range []string{`cairn_backups{phase="Completed"} 0`, `cairn_repository_size_bytes 0`} {
		wantLine(t, text, want)
	}
	if strings.Contains(text, BackupLastSuccess+"{") {
		t.Errorf("last success before any backup:\n%s", text)
	}

	data := t.TempDir()
	os.WriteFile(filepath.Join(data, "f"), []byte(strings.Repeat("data", 5000)), 0o644)
	vol := []catalogtest.Volume{{Namespace: "app", Pod: "web-0", Volume: "data", PVC: "data-web-0", Dir: data}}
	failed := append(vol, catalogtest.Volume{Namespace: "app", Pod: "web-0", Volume: "cache", Error: "copy failed"})
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	catalogtest.WriteBackup(t, w, "by-hand", t0, vol)
	withSchedule(t, w, catalogtest.WriteBackup(t, w, "nightly-1", t0.Add(24*time.Hour), vol), "nightly")
	late := withSchedule(t, w, catalogtest.WriteBackup(t, w, "nightly-2", t0.Add(48*time.Hour), failed), "nightly")

	if err := f.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	text = scrape(t, m)
	for _, want := range []string{
		`cairn_backups{phase="Completed"} 2`,
		`cairn_backups{phase="PartiallyFailed"} 1`,
		`cairn_backups{phase="Failed"} 0`,
		`cairn_backup_last_success_timestamp_seconds{schedule=""} ` + strconv.FormatInt(t0.Unix(), 10),
		`cairn_backup_last_success_timestamp_seconds{schedule="nightly"} ` + strconv.FormatInt(t0.Add(24*time.Hour).Unix(), 10),
		`cairn_repository_refresh_failures_total 0`,
	} {
		wantLine(t, text, want)
	}
	var size, packs int64
	be.List(ctx, repo.PackFile, func(fi repo.FileInfo) error { size += fi.Size; packs++; return nil })
	if size == 0 {
		t.Fatal("no pack files written")
	}
	wantLine(t, text, RepositorySizeBytes+" "+formatFloat(float64(size)))
	wantLine(t, text, RepositoryPackFiles+" "+formatFloat(float64(packs)))
	if !strings.Contains(text, RefreshTimestamp+" 1") {
		t.Errorf("no refresh time:\n%s", text)
	}

	// A backup snapshot without backup.json: Unknown, and the refresh
	// still counts as done (partial, not failed).
	a := archiver.NewArchiver(w, archiver.ArchiveOptions{Time: t0, Tags: []string{layout.TagBackup + "broken"}, Hostname: "test-cluster"})
	root, err := a.SaveTree(ctx, &snapshot.Tree{})
	if err != nil {
		t.Fatal(err)
	}
	broken, err := a.Finish(ctx, root, []string{layout.SnapshotPath("test-cluster")})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Refresh(ctx); !errors.Is(err, ErrPartial) {
		t.Fatalf("refresh with a backup without backup.json: %v", err)
	}
	text = scrape(t, m)
	wantLine(t, text, `cairn_backups{phase="Unknown"} 1`)
	wantLine(t, text, `cairn_backups{phase="Completed"} 2`)
	wantLine(t, text, RefreshFailuresTotal+" 0")
	be.Remove(ctx, repo.Handle{Type: repo.SnapshotFile, Name: broken.ID.String()})

	// A repository that cannot be read: a failed refresh, counted.
	bad := &Refresher{M: m, Repo: r}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := bad.Refresh(cctx); err == nil || errors.Is(err, ErrPartial) {
		t.Fatalf("refresh with a cancelled context: %v", err)
	}
	wantLine(t, scrape(t, m), RefreshFailuresTotal+" 1")

	// Forgotten: its phase leaves the count.
	if err := be.Remove(ctx, repo.Handle{Type: repo.SnapshotFile, Name: late.ID.String()}); err != nil {
		t.Fatal(err)
	}
	if err := f.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	text = scrape(t, m)
	wantLine(t, text, `cairn_backups{phase="PartiallyFailed"} 0`)
	if strings.Contains(text, `phase="Unknown"`) {
		t.Errorf("the removed broken backup is still counted:\n%s", text)
	}
}

// withSchedule replaces sn by a copy tagged schedule=NAME, as `cairn
// cluster schedule` tags its backups.
func withSchedule(t *testing.T, r *repo.Repository, sn *snapshot.Snapshot, name string) *snapshot.Snapshot {
	t.Helper()
	old := sn.ID
	cp := *sn
	cp.Tags = append(append([]string(nil), sn.Tags...), layout.TagSchedule+name)
	if _, err := snapshot.SaveSnapshot(t.Context(), r, &cp); err != nil {
		t.Fatal(err)
	}
	if err := r.Backend().Remove(t.Context(), repo.Handle{Type: repo.SnapshotFile, Name: old.String()}); err != nil {
		t.Fatal(err)
	}
	return &cp
}

func scrape(t *testing.T, m *Agent) string {
	t.Helper()
	var b strings.Builder
	if err := m.Registry.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func wantLine(t *testing.T, text, line string) {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return
		}
	}
	t.Errorf("no line %q in\n%s", line, text)
}
