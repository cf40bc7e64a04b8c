package repo_test

import (
	"os"
	"path/filepath"
	"testing"

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
