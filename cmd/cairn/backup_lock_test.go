package main

import (
	"context"
	"os"
	"testing"
)

// A backup takes its lock ahead (repo.LockAhead): it reads while its lock
// file is written and checked. An exclusive lock in place still stops it
// before anything is written, naming the holder; afterwards no lock of
// its own is left, and an ordinary backup leaves none either.
func TestBackupLockAhead(t *testing.T) {
	e := newInitEnv(t)
	data := e.makeData()
	e.ok("backup", data)
	l := e.holdLock(true)
	host, _ := os.Hostname()
	e.fails(1, e.run("backup", data), "locked", "exclusive lock", host, "PID")
	if got := e.repoFiles("locks"); len(got) != 1 {
		t.Errorf("locks after the refused backup: %v, want only the exclusive one", got)
	}
	if n := len(e.snapshots()); n != 1 {
		t.Errorf("%d snapshots after the refused backup, want 1", n)
	}
	if err := l.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.writeFile("data/new.txt", "new")
	e.ok("backup", data)
	if got := e.repoFiles("locks"); len(got) != 0 {
		t.Errorf("locks left: %v", got)
	}
	if n := len(e.snapshots()); n != 2 {
		t.Errorf("%d snapshots, want 2", n)
	}
	e.ok("check", "--read-data")
}
