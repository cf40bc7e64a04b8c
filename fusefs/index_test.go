package fusefs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/testutil"
)

// An index file written after the caller loaded the index, but before New
// listed the index files, is loaded too: the mount reads the data of the
// snapshot that came with it.
func TestMountLoadsIndexWrittenBeforeNew(t *testing.T) {
	testutil.NeedFUSE(t)
	ctx := context.Background()
	r, dir := newRepo(t)
	src := t.TempDir()
	testutil.GenTree(t, src, testutil.GenOptions{Seed: 5, SmallFiles: 5, Depth: 1})
	t1 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.Local)
	doBackup(t, r, src, t1)

	reader := openRepo(t, dir)
	if err := reader.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	want := "written between LoadIndex and New\n"
	if err := os.WriteFile(filepath.Join(src, "late.txt"), []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	doBackup(t, openRepo(t, dir), src, t1.Add(time.Hour))

	f, err := New(ctx, reader, Options{Warn: func(err error) { t.Logf("fusefs warning: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Mount(t.TempDir(), f, MountOptions{DefaultPermissions: true})
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() { unmountForTest(t, m) })
	got, err := os.ReadFile(filepath.Join(m.Dir, "snapshots", "latest", src, "late.txt"))
	if err != nil || string(got) != want {
		t.Fatalf("file of the snapshot whose index came late: %q, %v", got, err)
	}
}
