package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// oneErrorLine asserts that stderr is exactly one "cairn: " line.
func oneErrorLine(t *testing.T, res result) string {
	t.Helper()
	if strings.Count(res.stderr, "\n") != 1 || !strings.HasPrefix(res.stderr, "cairn: ") {
		t.Fatalf("stderr is not one \"cairn: \" line: %q", res.stderr)
	}
	return strings.TrimSuffix(res.stderr, "\n")
}

func TestWrongPassword(t *testing.T) {
	e := newInitEnv(t)
	res := e.runEnv(map[string]string{"CAIRN_PASSWORD": "wrong"}, "snapshots")
	e.fails(exitFailure, res)
	if got, want := oneErrorLine(t, res), "cairn: wrong password or no key found for repository "+e.repo; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if res.stdout != "" {
		t.Errorf("stdout not empty: %q", res.stdout)
	}
}

func TestMissingRepository(t *testing.T) {
	e := newTestEnv(t)
	res := e.run("snapshots")
	e.fails(exitFailure, res, e.repo, "cairn init")
	oneErrorLine(t, res)
	os.Mkdir(e.repo, 0o700) // a directory without config is no repository either
	e.fails(exitFailure, e.run("backup", e.dir), "cairn init")
	e.fails(exitFailure, e.runEnv(map[string]string{"CAIRN_REPOSITORY": ""}, "snapshots"), "CAIRN_REPOSITORY", "--repo")
}

func TestPasswordSources(t *testing.T) {
	e := newTestEnv(t)
	noPw := map[string]string{"CAIRN_PASSWORD": ""}
	res := e.runEnv(noPw, "init")
	e.fails(exitFailure, res)
	if got := oneErrorLine(t, res); got != "cairn: no password: set CAIRN_PASSWORD or --password-file" {
		t.Errorf("got %q", got)
	}
	// At a terminal, init asks twice; a mismatch creates nothing.
	e.passwords = []string{"typed", "typo"}
	e.fails(exitFailure, e.runEnv(noPw, "init"), "do not match")
	if _, err := os.Stat(e.repo); err == nil {
		t.Error("init created the repository although the passwords differed")
	}
	e.passwords = []string{"typed", "typed"}
	if res := e.runEnv(noPw, "init"); res.code != 0 || !strings.Contains(res.stderr, "enter password again") {
		t.Fatalf("init with prompt: %d %q", res.code, res.stderr)
	}
	e.passwords = nil
	// A password file (flag or environment) wins over CAIRN_PASSWORD.
	pwFile := e.writeFile("pw", "typed\n")
	e.ok("--password-file", pwFile, "snapshots")
	if res := e.runEnv(map[string]string{"CAIRN_PASSWORD_FILE": pwFile}, "snapshots"); res.code != 0 {
		t.Errorf("CAIRN_PASSWORD_FILE: %s", res.stderr)
	}
	e.fails(exitFailure, e.run("--password-file", e.writeFile("empty", "\n"), "snapshots"), "is empty")
	e.fails(exitFailure, e.run("--password-file", filepath.Join(e.dir, "nope"), "snapshots"), "password file")
	// Prompt for an existing repository: asked once.
	e.passwords = []string{"typed"}
	if res := e.runEnv(noPw, "snapshots"); res.code != 0 || strings.Count(res.stderr, "enter password") != 1 {
		t.Errorf("prompt: %d %q", res.code, res.stderr)
	}
}

func TestSnapshotIDErrors(t *testing.T) {
	e := newInitEnv(t)
	e.ok("backup", e.makeData())
	id := strings.TrimSpace(e.ok("list", "snapshots").stdout)
	target := filepath.Join(e.dir, "t")
	e.fails(exitFailure, e.run("restore", "ffffffff", "--target", target), "ffffffff", "no matching ID")

	// Two snapshot files with the same first 8 characters: a prefix of 8 is
	// ambiguous, the full ID is not.
	twin := id[:8] + strings.Repeat("0", 56)
	if twin == id {
		twin = id[:8] + strings.Repeat("1", 56)
	}
	src := filepath.Join(e.repo, "snapshots", id)
	if err := os.WriteFile(filepath.Join(e.repo, "snapshots", twin), []byte(readFile(t, src)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.fails(exitFailure, e.run("restore", id[:8], "--target", target), "ambiguous", "give more characters")
	e.fails(exitFailure, e.run("cat", "snapshot", id[:8]), "ambiguous")
	e.ok("restore", id, "--target", target)
	// The twin's content does not match its name: "latest" cannot be told
	// while it is there, whatever the filter.
	e.fails(exitFailure, e.run("restore", "latest", "--target", target, "--host", "elsewhere"), "cannot be read", twin)
	os.Remove(filepath.Join(e.repo, "snapshots", twin))
	e.fails(exitFailure, e.run("restore", "latest", "--target", target, "--host", "elsewhere"), "no snapshot")
	e.fails(exitFailure, e.run("restore", "latest"), "--target")
}

func TestExtendedOptions(t *testing.T) {
	e := newInitEnv(t)
	data := e.makeData()
	res := e.run("-o", "colour=blue", "snapshots")
	e.fails(exitFailure, res, "unknown option -o colour", "known options: read-only")
	oneErrorLine(t, res)
	e.fails(exitFailure, e.run("-o", "read-only", "snapshots"), "key=value")
	e.fails(exitFailure, e.run("-o", "read-only=maybe", "snapshots"), "true or false")

	// Read-only: a backup fails before anything else, even without password.
	for _, args := range [][]string{{"-o", "read-only=true"}, {"--read-only"}} {
		res := e.runEnv(map[string]string{"CAIRN_PASSWORD": ""}, append(args, "backup", data)...)
		e.fails(exitFailure, res, "read-only")
		oneErrorLine(t, res)
	}
	if n := len(e.repoFiles("snapshots")) + len(e.repoFiles("locks")); n != 0 {
		t.Errorf("read-only backup wrote %d files", n)
	}
	e.fails(exitFailure, e.run("--read-only", "key", "add", "--new-password-file", e.writeFile("p", "x")), "read-only")
	e.fails(exitFailure, e.run("--read-only", "unlock"), "read-only")
	// Reading works read-only.
	e.ok("-o", "read-only=true", "snapshots")
	e.ok("-o", "read-only=true", "check")
}

func TestFlagValidation(t *testing.T) {
	e := newTestEnv(t)
	e.fails(exitFailure, e.run("--pack-size", "2", "init"), "--pack-size", "4 to 128")
	e.fails(exitFailure, e.run("--compression", "best", "init"), "auto, off or max")
	e.fails(exitFailure, e.run("init", "--repository-version", "3"), "use 1 or 2")
	e.fails(exitFailure, e.run("--bogus"), "unknown flag: --bogus", "--help")
	res := e.run("bogus")
	e.fails(exitFailure, res, "unknown command", "cairn --help")
	oneErrorLine(t, res)
	// Every command group, not only the root: a mistyped scheduled
	// command must fail, not print help and succeed.
	res = e.run("cluster", "bakup")
	e.fails(exitFailure, res, `"bakup" is not a command of "cairn cluster"`, "did you mean backup", "cairn cluster --help")
	oneErrorLine(t, res)
	e.fails(exitFailure, e.run("key", "lst"), `"lst" is not a command of "cairn key"`, "did you mean list")
	for _, group := range []string{"cluster", "key"} {
		if res := e.run(group); res.code != exitOK || !strings.Contains(res.stdout, "Available Commands") {
			t.Errorf("cairn %s: exit %d, want its help and 0: %s", group, res.code, res.stdout)
		}
	}
	e.fails(exitFailure, e.run("list"), "expects one type")
	e.fails(exitFailure, e.run("cat", "config", "extra"), "takes no ID")
	if _, err := os.Stat(e.repo); err == nil {
		t.Error("a failed init created the repository")
	}
	e.ok("init", "--repository-version", "1")
	var cfg struct{ Version int }
	if err := jsonUnmarshal(e.ok("cat", "config").stdout, &cfg); err != nil || cfg.Version != 1 {
		t.Errorf("init --repository-version 1 made version %d (%v)", cfg.Version, err)
	}
	e.fails(exitFailure, e.run("init"), "already exists")
}

func TestLocks(t *testing.T) {
	e := newInitEnv(t)
	data := e.makeData()
	ctx := context.Background()
	r := e.openRepo()
	// An exclusive lock blocks backup, also with --no-lock: backup writes.
	l := e.holdLock(true)
	e.fails(exitFailure, e.run("backup", data), "locked", "cairn unlock")
	res := e.run("--no-lock", "backup", data)
	e.fails(exitFailure, res, "locked", "cairn unlock")
	if !strings.Contains(res.stderr, "--no-lock is ignored") {
		t.Errorf("--no-lock backup did not say that it locks anyway:\n%s", res.stderr)
	}

	// A stale lock (old) goes with plain unlock; the live one stays.
	if _, err := r.SaveJSONUnpacked(ctx, repo.LockFile, &repo.LockJSON{Time: time.Now().Add(-time.Hour), Hostname: "gone", PID: 1}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.repoFiles("locks")); n != 2 {
		t.Fatalf("%d locks, want 2", n)
	}
	if res := e.ok("unlock"); !strings.Contains(res.stdout, "removed 1 stale lock") {
		t.Errorf("unlock: %q", res.stdout)
	}
	if n := len(e.repoFiles("locks")); n != 1 {
		t.Fatalf("%d locks after unlock, want the live one", n)
	}
	e.ok("unlock", "--remove-all")
	if n := len(e.repoFiles("locks")); n != 0 {
		t.Errorf("%d locks after unlock --remove-all", n)
	}
	l.Unlock(ctx)
	if ids := strings.Fields(e.ok("list", "locks").stdout); len(ids) != 0 {
		t.Errorf("list locks: %v", ids)
	}
}

func TestRestoreFailuresExitCode(t *testing.T) {
	e := newInitEnv(t)
	data := e.makeData()
	e.ok("backup", data)
	// Remove the packs holding file contents: the trees stay readable, every
	// non-empty file fails.
	ctx := context.Background()
	r := e.openRepo()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	r.Index().Each(func(pb repo.PackedBlob) bool {
		if pb.Type == repo.DataBlob {
			os.Remove(filepath.Join(e.repo, "data", pb.Pack.String()[:2], pb.Pack.String()))
		}
		return true
	})
	res := e.run("restore", "latest", "--target", filepath.Join(e.dir, "out"))
	e.fails(exitFailure, res, "4 items could not be restored")
	if n := strings.Count(res.stderr, "error: "+data+"/"); n != 4 {
		t.Errorf("%d \"error: PATH\" lines, want 4:\n%s", n, res.stderr)
	}
	if locks := e.repoFiles("locks"); len(locks) != 0 {
		t.Errorf("failed restore left locks: %v", locks)
	}
}
