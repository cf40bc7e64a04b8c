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
			var left []string
			filepath.WalkDir(filepath.Join(dir, "tmp"), func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					left = append(left, p)
				}
				return nil
			})
			if len(left) != 0 {
				t.Errorf("temp files left in tmp/: %v", left)
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
