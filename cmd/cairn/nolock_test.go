package main

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog/catalogtest"
	"github.com/cairn-backup/cairn/k8s/restore"
	"github.com/cairn-backup/cairn/k8s/restorelog"
	"github.com/spf13/cobra"
)

// noLockCase says how a command must behave when run with --no-lock while
// another process holds an exclusive lock (a prune).
type noLockCase struct {
	path string   // command path without "cairn"
	args []string // after the command path; nil: not run here (needs a cluster or a mount)
	// want: "read" runs without a lock; "lock" locks anyway and so fails on
	// the held lock; "refuse" refuses --no-lock without opening anything.
	want string
}

// TestNoLockNeverWritesUnlocked runs every command of the CLI with --no-lock
// next to a held exclusive lock: a command either only reads, or it waits
// for its lock (fails here), or refuses --no-lock; the repository's files
// never change. A new command must be added to the table.
func TestNoLockNeverWritesUnlocked(t *testing.T) {
	e := newInitEnv(t)
	data := e.makeData()
	e.ok("backup", data)
	// A cluster backup with a volume, older than the file backup ("latest").
	catalogtest.WriteBackup(t, e.openRepo(), "b1", time.Now().Add(-time.Hour),
		[]catalogtest.Volume{{Namespace: "ns", Pod: "p", Volume: "v", PVC: "c", Dir: data}})
	// A restore record of b1, older than the file backup too.
	nlSaveRecord(t, e, "r1", "b1", time.Now().Add(-30*time.Minute))
	e.ok("key", "add", "--new-password-file", e.writeFile("pw2", "second"))
	keys := e.repoFiles("keys")
	target := filepath.Join(e.dir, "target")
	waitRoot := filepath.Join(e.dir, "wait")
	if err := os.MkdirAll(filepath.Join(waitRoot, "v"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile("wait/v/.cairn-restore-m", "")

	// Each command path appears at least once; paths with several rows try
	// more flags.
	cases := []noLockCase{
		{"backup", []string{data}, "lock"},
		{"backup", []string{data, data, "--force"}, "lock"},
		{"backup", []string{"--stdin-from-command", "--", "echo", "x"}, "lock"},
		{"etcd snapshot", nil, "lock"}, // needs an etcd; declares appendLock
		{"key add", []string{"--new-password-file", e.writeFile("pw3", "third")}, "lock"},
		{"key passwd", []string{"--new-password-file", e.writeFile("pw4", "fourth")}, "refuse"},
		{"key remove", []string{keys[0][:8]}, "refuse"},
		{"key list", []string{}, "read"},
		{"repair index", []string{}, "refuse"},
		{"forget", []string{"--keep-last", "1"}, "refuse"},
		{"forget", []string{"--keep-last", "1", "--prune"}, "refuse"},
		{"forget", []string{"--keep-last", "1", "--dry-run"}, "read"},
		{"prune", []string{}, "refuse"},
		{"prune", []string{"--dry-run"}, "read"},
		{"cluster delete", []string{"some-backup"}, "refuse"},
		{"cluster delete", []string{"some-backup", "--prune"}, "refuse"},
		{"cluster backup", nil, "lock"}, // needs a cluster; declares appendLock
		{"cluster backups", nil, "read"},
		{"cluster describe", nil, "read"},
		{"cluster logs", nil, "read"},
		{"cluster download", nil, "read"},
		{"cluster restore", nil, "read"}, // writes to the cluster; its record needs a lock, and is left out with --no-lock
		{"cluster restores", []string{}, "read"},
		{"cluster restores", []string{"--backup", "b1", "--json"}, "read"},
		{"cluster describe-restore", []string{"r1", "--details"}, "read"},
		{"cluster describe-restore", []string{"r1", "--log"}, "read"},
		{"cluster agent", nil, "lock"},        // needs a cluster; declares appendLock, locks each volume's backup
		{"cluster install-crds", nil, "read"}, // never opens the repository
		// Reads the password for the agents' Secret; never opens the repository.
		{"cluster install", []string{"--dry-run", "-o", "yaml", "--existing-secret", "s"}, "read"},
		{"cluster uninstall", nil, "read"},         // needs a cluster; never opens the repository
		{"cluster schedule create", nil, "read"},   // needs a cluster; never opens the repository
		{"cluster schedule list", nil, "read"},     // needs a cluster; never opens the repository
		{"cluster schedule describe", nil, "read"}, // needs a cluster; lists the schedule's backups
		{"cluster schedule pause", nil, "read"},    // needs a cluster; never opens the repository
		{"cluster schedule unpause", nil, "read"},  // needs a cluster; never opens the repository
		{"cluster schedule delete", nil, "read"},   // needs a cluster; never deletes backups
		{"cluster maintenance run", []string{}, "refuse"},
		{"cluster maintenance run", nil, "read"},    // with --dry-run: needs a cluster
		{"cluster maintenance create", nil, "read"}, // needs a cluster; never opens the repository
		{"cluster maintenance delete", nil, "read"}, // needs a cluster; never opens the repository
		{"cluster maintenance history", []string{}, "read"},
		{"cluster export-volume", []string{"b1", "--pvc", "ns/c", "--target", filepath.Join(e.dir, "exported")}, "read"},
		{"cluster export-volume", []string{"b1", "ns/p/v", "--archive", "tar"}, "read"},
		// Never opens the repository: waits for marker files only.
		{"cluster restore-wait", []string{"--volumes-root", waitRoot, "--marker", "m", "--volumes", "v"}, "read"},
		{"snapshots", []string{}, "read"},
		{"restore", []string{"latest", "--target", target}, "read"},
		{"check", []string{}, "read"},
		{"check", []string{"--read-data"}, "read"},
		{"cat", []string{"config"}, "read"},
		{"list", []string{"snapshots"}, "read"},
		{"list", []string{"index"}, "read"},
		{"list", []string{"locks"}, "read"},
		{"stats", []string{}, "read"},
		{"ls", []string{"latest"}, "read"},
		{"find", []string{"a.txt"}, "read"},
		{"dump", []string{"latest", filepath.Join(data, "a.txt")}, "read"},
		{"diff", []string{"latest", "latest"}, "read"},
		{"mount", nil, "read"},
		{"unlock", []string{}, "read"}, // removes only stale locks and takes none
		{"init", nil, "read"},          // refuses an existing repository
		{"version", []string{}, "read"},
		{"completion", []string{"bash"}, "read"},
	}

	// Every runnable command must be in the table.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && c.HasParent() && len(c.Commands()) == 0 {
			if !slices.ContainsFunc(cases, func(k noLockCase) bool { return "cairn "+k.path == c.CommandPath() }) {
				t.Errorf("command %q is not in this test's table: say whether it writes", c.CommandPath())
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(&globalOptions{env: &cliEnv{}}))

	ctx := context.Background()
	l := e.holdLock(true)
	defer l.Unlock(ctx)
	before := repoTree(t, e.repo)

	for _, c := range cases {
		if c.args == nil {
			continue
		}
		args := append(append([]string{"--no-lock"}, strings.Fields(c.path)...), c.args...)
		res := e.run(args...)
		switch c.want {
		case "read":
			if res.code != 0 {
				t.Errorf("cairn %s: exit %d, want 0 (a reader runs without a lock)\n%s", strings.Join(args, " "), res.code, res.stderr)
			}
		case "lock":
			if res.code != exitFailure || !strings.Contains(res.stderr, "locked") || !strings.Contains(res.stderr, "--no-lock is ignored") {
				t.Errorf("cairn %s: exit %d, want 1 on the held lock with a note that --no-lock is ignored\n%s", strings.Join(args, " "), res.code, res.stderr)
			}
		case "refuse":
			if res.code != exitFailure || !strings.Contains(res.stderr, "exclusive lock") || !strings.Contains(res.stderr, "drop it") {
				t.Errorf("cairn %s: exit %d, want 1 refusing --no-lock\n%s", strings.Join(args, " "), res.code, res.stderr)
			}
		}
		if after := repoTree(t, e.repo); !slices.Equal(before, after) {
			t.Fatalf("cairn %s changed the repository without a lock:\nbefore %v\nafter  %v", strings.Join(args, " "), before, after)
		}
	}
}

// nlSaveRecord saves a restore record as `cluster restore` does.
func nlSaveRecord(t *testing.T, e *testEnv, name, backup string, when time.Time) {
	t.Helper()
	ctx := context.Background()
	r := e.openRepo()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	res := &restore.RestoreResult{Name: name, Backup: backup, Cluster: "test-cluster", Start: when, End: when, Phase: "Completed",
		Counts: map[string]map[string]int{"configmaps": {restore.ActionCreated: 1}},
		Items:  []restore.ItemResult{{Resource: "configmaps", Namespace: "ns", Name: "c", Action: restore.ActionCreated}}}
	if _, err := restorelog.Save(ctx, r, &restorelog.Record{RestoreResult: res}, nil); err != nil {
		t.Fatal(err)
	}
}

// repoTree lists the files of a local repository (tmp/ left out).
func repoTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() && rel == "tmp" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
