package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/restore"
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

// TestClusterRestoreVolumeFlags: volume data is restored by default, with
// this cairn's image and the agents' namespace; --restore-volumes=false
// turns it off; bad values are refused before anything is opened.
func TestClusterRestoreVolumeFlags(t *testing.T) {
	opts := func(args ...string) (*restoreVolumeOpts, error) {
		t.Helper()
		cmd := newClusterRestoreCmd(&globalOptions{env: &cliEnv{}}, &clusterOptions{})
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		var f clusterRestoreFlags
		f.restoreVolumes, _ = cmd.Flags().GetBool("restore-volumes")
		f.helperImage, _ = cmd.Flags().GetString("restore-helper-image")
		f.agentNamespace, _ = cmd.Flags().GetString("agent-namespace")
		f.existing, f.workers = "none", 8
		o, err := f.restoreOptions(nil)
		return o.VolumeData, err
	}
	vd, err := opts()
	if err != nil || vd == nil || vd.HelperImage != "ghcr.io/cairn-backup/cairn:"+version || vd.AgentNamespace != "cairn-system" {
		t.Fatalf("defaults: %+v, %v", vd, err)
	}
	if vd, err := opts("--restore-volumes=false"); err != nil || vd != nil {
		t.Errorf("--restore-volumes=false: %+v, %v", vd, err)
	}
	if vd, err := opts("--restore-helper-image", "reg.local/cairn:1", "--agent-namespace", "backup"); err != nil || vd.HelperImage != "reg.local/cairn:1" || vd.AgentNamespace != "backup" {
		t.Errorf("set: %+v, %v", vd, err)
	}
	if _, err := opts("--agent-namespace", "Not_A_Namespace"); err == nil || !strings.Contains(err.Error(), "--agent-namespace") {
		t.Errorf("bad namespace: %v", err)
	}
	if _, err := opts("--restore-helper-image", ""); err == nil {
		t.Error("empty image accepted")
	}
}

type restoreVolumeOpts = restore.VolumeDataOptions
