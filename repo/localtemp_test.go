package repo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestParseTempOwner(t *testing.T) {
	host, ns, pid, ok := parseTempOwner(tempOwner())
	h, _ := os.Hostname()
	if !ok || host != sanitizeHost(h) || ns != pidNamespace() || pid != os.Getpid() {
		t.Fatalf("parseTempOwner(%q) = %q %d %d %v", tempOwner(), host, ns, pid, ok)
	}
	for _, bad := range []string{"pack-123", "cairn-", "cairn-host-1", "cairn-host-x-1", "cairn-host-1-0", "cairn-host-1--5"} {
		if _, _, _, ok := parseTempOwner(bad); ok {
			t.Errorf("parseTempOwner(%q) accepted", bad)
		}
	}
	if got := sanitizeHost("a-b/c"); got != "a_b_c" {
		t.Errorf("sanitizeHost: %q", got)
	}
}

// writeOld makes a file whose mtime lies two hours back.
func writeOld(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("partial pack"), 0o600); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(p, past, past); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Dir(p), past, past); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// A stopped writer's temp file, untouched for two hours, survives other
// processes opening the repository and an exclusive lock; once the writer
// is gone the next open removes it. Files nobody can trace go only under
// an exclusive lock.
func TestTempFilesOfLiveWritersStay(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Init(context.Background(), be, "pw", 2, Options{KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	writer := exec.Command("sleep", "300")
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	defer writer.Process.Kill()
	if err := writer.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	h, _ := os.Hostname()
	owner := tempOwnerPrefix + sanitizeHost(h) + "-" + strconv.FormatUint(pidNamespace(), 10) + "-" + strconv.Itoa(writer.Process.Pid)
	live := filepath.Join(dir, "tmp", owner, "pack-123")
	otherHost := filepath.Join(dir, "tmp", "cairn-elsewhere-1-42", "pack-456")
	legacy := filepath.Join(dir, "tmp", "pack-789")
	fresh := filepath.Join(dir, "tmp", "save-fresh")
	for _, p := range []string{live, otherHost, legacy} {
		writeOld(t, p)
	}
	if err := os.WriteFile(fresh, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := OpenLocal(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{live, otherHost, legacy, fresh} {
		if !exists(p) {
			t.Fatalf("opening the repository removed %s", p)
		}
	}
	ctx := context.Background()
	l, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock(ctx)
	if !exists(live) {
		t.Fatal("an exclusive lock removed the temp file of a live (stopped) writer on this host")
	}
	if exists(otherHost) || exists(legacy) {
		t.Error("an exclusive lock kept temp files untouched for two hours that no live process on this host owns")
	}
	if !exists(fresh) {
		t.Error("an exclusive lock removed a fresh temp file")
	}

	writer.Process.Kill()
	writer.Wait()
	if _, err := OpenLocal(dir); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Dir(live)) {
		t.Error("the temp directory of an exited writer on this host was kept")
	}
}
