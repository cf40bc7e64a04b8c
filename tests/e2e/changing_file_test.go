package e2e

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A file appended to while `cairn backup` reads it is reported by name and
// makes the exit code 3; the next backup, with the file quiet, reads it
// again and exits 0.
func TestBackupFileAppendedWhileRead(t *testing.T) {
	dir := t.TempDir()
	src, repoDir := filepath.Join(dir, "src"), filepath.Join(dir, "repo")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(src, "growing.log")
	data := make([]byte, 64<<20)
	rand.NewChaCha8([32]byte{9}).Read(data)
	if err := os.WriteFile(log, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "quiet"), data[:1<<20], 0o644); err != nil {
		t.Fatal(err)
	}
	mustCairn(t, repoDir, "init")

	// Append a line every millisecond for as long as the backup runs: the
	// reading of 64 MiB takes far longer, so its size changes under it.
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer f.Close()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				if _, err := f.WriteString("another line of log\n"); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	res := cairn(t, repoDir, "backup", src)
	close(stop)
	wg.Wait()
	t.Logf("stderr of the first backup:\n%s", res.stderr)
	if res.code != 3 {
		t.Fatalf("backup of a growing file: want exit 3\n%v", res)
	}
	if !strings.Contains(res.stderr, "warning: "+log+": changed while being read") ||
		!strings.Contains(res.stderr, "1 file changed while being read") {
		t.Fatalf("growing file not named on stderr:\n%v", res)
	}
	if strings.Contains(res.stderr, filepath.Join(src, "quiet")) {
		t.Errorf("quiet file reported:\n%v", res)
	}

	res = mustCairn(t, repoDir, "backup", src)
	if !strings.Contains(res.stdout, "0 new,     1 changed,     1 unmodified") {
		t.Errorf("second backup should read the growing file again and reuse the quiet one:\n%v", res)
	}
	restore := filepath.Join(dir, "restore")
	mustCairn(t, repoDir, "restore", "latest", "--target", restore)
	want, _ := os.ReadFile(log)
	got, err := os.ReadFile(filepath.Join(restore, log))
	if err != nil || string(got) != string(want) {
		t.Errorf("restored %d bytes, file has %d (%v)", len(got), len(want), err)
	}
}
