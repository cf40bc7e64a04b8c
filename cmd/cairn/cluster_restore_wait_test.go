package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestoreWait runs the init container's command against real
// directories: it waits for markers that appear later, gives up with one
// line on a timeout and refuses volumes that are not mounted.
func TestRestoreWait(t *testing.T) {
	oldPoll := restoreWaitPoll
	restoreWaitPoll = 20 * time.Millisecond
	t.Cleanup(func() { restoreWaitPoll = oldPoll })

	e := newTestEnv(t)
	root := filepath.Join(e.dir, "vols")
	for _, v := range []string{"data", "cache"} {
		if err := os.MkdirAll(filepath.Join(root, v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"cluster", "restore-wait", "--volumes-root", root, "--marker", "r1", "--volumes", "data,cache"}

	t.Run("markers appear later", func(t *testing.T) {
		done := make(chan result, 1)
		go func() { done <- e.run(append(args, "--timeout", "30s")...) }()
		time.Sleep(150 * time.Millisecond)
		if err := os.WriteFile(filepath.Join(root, "data", ".cairn-restore-r1"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		// One marker is not enough; another restore's marker does not count.
		if err := os.WriteFile(filepath.Join(root, "cache", ".cairn-restore-r0"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
		select {
		case res := <-done:
			t.Fatalf("returned before every volume had its marker: exit %d\n%s%s", res.code, res.stdout, res.stderr)
		default:
		}
		if err := os.WriteFile(filepath.Join(root, "cache", ".cairn-restore-r1"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		res := <-done
		if res.code != 0 || !strings.Contains(res.stdout, "volume data restored: data, cache") {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
		}
		for _, v := range []string{"data", "cache"} { // nothing removed
			if _, err := os.Stat(filepath.Join(root, v, ".cairn-restore-r1")); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		res := e.run("cluster", "restore-wait", "--volumes-root", root, "--marker", "r2", "--volumes", "data", "--timeout", "200ms")
		e.fails(exitFailure, res, "data without marker .cairn-restore-r2 after 200ms", "agent running")
		if time.Since(start) < 200*time.Millisecond {
			t.Error("gave up before the timeout")
		}
	})

	t.Run("volume not mounted", func(t *testing.T) {
		res := e.run("cluster", "restore-wait", "--volumes-root", root, "--marker", "r1", "--volumes", "data,nope")
		e.fails(exitFailure, res, "volume nope is not mounted at")
	})

	t.Run("usage", func(t *testing.T) {
		e.fails(exitFailure, e.run("cluster", "restore-wait", "--volumes-root", root, "--volumes", "data"), "--marker")
		e.fails(exitFailure, e.run("cluster", "restore-wait", "--volumes-root", root, "--marker", "r1"), "--volumes")
		e.fails(exitFailure, e.run("cluster", "restore-wait", "--volumes-root", root, "--marker", "r1", "--volumes", "../x"), "not a volume name")
	})
}
