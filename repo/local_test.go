package repo_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backendtest"
)

func TestLocalConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) repo.Backend {
		be, err := repo.CreateLocal(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return be
	})
}

func TestLocalLeavesNoTempFiles(t *testing.T) {
	var dirs []string
	backendtest.Run(t, func(t *testing.T) repo.Backend {
		dir := filepath.Join(t.TempDir(), "repo")
		dirs = append(dirs, dir)
		be, _ := repo.CreateLocal(dir)
		t.Cleanup(func() {
			if left, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(left) != 0 {
				t.Errorf("%d temp files left in tmp/", len(left))
			}
		})
		return be
	})
	if len(dirs) == 0 {
		t.Fatal("suite ran no test")
	}
}

func TestOpenLocalMissing(t *testing.T) {
	_, err := repo.OpenLocal(filepath.Join(t.TempDir(), "nope"))
	if !repo.IsNotExist(err) {
		t.Fatalf("got %v", err)
	}
}

func TestOpenLocalRemovesOldTempFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := repo.CreateLocal(dir); err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(dir, "tmp", "pack-old"), filepath.Join(dir, "tmp", "pack-fresh")
	os.WriteFile(old, []byte("x"), 0o600)
	os.WriteFile(fresh, []byte("x"), 0o600)
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(old, past, past)
	if _, err := repo.OpenLocal(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatal("a temp file untouched for 2 hours was kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatal("a fresh temp file (maybe a live backup's) was removed")
	}
}
