package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/tests/testutil"
)

// TestBackupStdin saves standard input and a command's output as restic
// does (--stdin, --stdin-filename, --stdin-from-command): the snapshot's
// path is the file, cairn and restic read it back whole, and a failing
// command saves no snapshot.
func TestBackupStdin(t *testing.T) {
	e := newInitEnv(t)
	data := make([]byte, 9<<20+123) // several chunks
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	e.stdin = bytes.NewReader(data)
	e.ok("backup", "--stdin", "--stdin-filename", "db/dump.sql", "--tag", "db")
	e.stdin = nil

	var sns []struct {
		Paths []string `json:"paths"`
		Tags  []string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(e.ok("snapshots", "--json").stdout), &sns); err != nil || len(sns) != 1 {
		t.Fatalf("snapshots: %v %+v", err, sns)
	}
	if len(sns[0].Paths) != 1 || sns[0].Paths[0] != "/db/dump.sql" {
		t.Errorf("paths %v, want [/db/dump.sql]", sns[0].Paths)
	}
	if got := e.ok("dump", "latest", "/db/dump.sql").stdout; got != string(data) {
		t.Errorf("cairn dump: %d bytes back, want %d equal ones", len(got), len(data))
	}
	if out, err := testutil.RunRestic(t, e.repo, testPassword, "check", "--read-data"); err != nil {
		t.Fatalf("restic check: %v\n%s", err, out)
	}
	out, err := testutil.RunRestic(t, e.repo, testPassword, "dump", "latest", "/db/dump.sql")
	if err != nil || !bytes.Equal(out, data) {
		t.Errorf("restic dump: %v, %d bytes (want %d)", err, len(out), len(data))
	}

	e.ok("backup", "--stdin-from-command", "--stdin-filename", "hello.txt", "--", "sh", "-c", "printf 'hello from a command'")
	if got := e.ok("dump", "latest", "/hello.txt").stdout; got != "hello from a command" {
		t.Errorf("command output saved as %q", got)
	}

	// A command that fails saves nothing, whatever it printed.
	res := e.run("backup", "--stdin-from-command", "--", "sh", "-c", "printf partial; exit 3")
	e.fails(exitFailure, res, "sh failed", "no snapshot was saved")
	if err := json.Unmarshal([]byte(e.ok("snapshots", "--json").stdout), &sns); err != nil || len(sns) != 2 {
		t.Errorf("a failing command left a snapshot: %d snapshots", len(sns))
	}

	// Contradictions are refused before anything is read.
	e.fails(exitFailure, e.run("backup", "--stdin", "/etc"), "takes no paths")
	e.fails(exitFailure, e.run("backup", "--stdin-from-command"), "needs the command")
	e.fails(exitFailure, e.run("backup", "--stdin", "--stdin-from-command", "--", "true"), "contradict")
	e.fails(exitFailure, e.run("backup", "--stdin", "--stdin-filename", "/"), "give a file name")
	noPw := e.runEnv(map[string]string{"CAIRN_PASSWORD": ""}, "backup", "--stdin")
	e.fails(exitFailure, noPw, "password must come from")
	if !strings.Contains(e.ok("backup", "--help").stdout, "--stdin-from-command") {
		t.Error("help does not tell of --stdin-from-command")
	}
}
