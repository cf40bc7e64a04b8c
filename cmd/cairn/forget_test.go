package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// backupAt makes a snapshot of data at a given time and returns its ID.
func backupAt(e *testEnv, data, when string, extra ...string) string {
	e.t.Helper()
	res := e.ok(append([]string{"backup", "--json", data, "--time", when}, extra...)...)
	var sum struct {
		SnapshotID string `json:"snapshot_id"`
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.SnapshotID == "" {
		e.t.Fatalf("backup --json: %v\n%s", err, res.stdout)
	}
	return sum.SnapshotID
}

func snapshotIDs(sns []map[string]any) []string {
	var out []string
	for _, sn := range sns {
		out = append(out, sn["id"].(string))
	}
	slices.Sort(out)
	return out
}

func TestForgetUsage(t *testing.T) {
	e := newInitEnv(t)
	data := e.makeData()
	id := backupAt(e, data, "2024-01-01 10:00:00")
	e.fails(1, e.run("forget"), "no policy given")
	e.fails(1, e.run("forget", "--keep-last", "1", id[:8]), "either snapshot IDs or a policy")
	e.fails(1, e.run("forget", "--keep-within", "3w"), "--keep-within", "unknown unit", "3w")
	e.fails(1, e.run("forget", "--keep-last", "-2"), "keep-last")
	e.fails(1, e.run("forget", "--keep-daily", "1", "--group-by", "user"), "--group-by")
	e.fails(1, e.run("forget", "--keep-tag", "", "--dry-run"), "--keep-tag")
	e.fails(1, e.run("forget", "--keep-last", "1", "--prune", "--max-unused", "lots"), "--max-unused")
	e.fails(1, e.run("backup", data, "--ttl", "0d"), "--ttl", "positive")
	e.fails(1, e.run("--no-lock", "forget", "--keep-last", "1"), "exclusive lock", "--no-lock")
	e.fails(1, e.run("--no-lock", "prune"), "exclusive lock", "--no-lock")
	if got := snapshotIDs(e.snapshots()); len(got) != 1 {
		t.Fatalf("a failed forget removed snapshots: %v", got)
	}
	// "unlimited" is -1.
	res := e.ok("forget", "--keep-last", "unlimited", "--dry-run")
	if !strings.Contains(res.stdout, "keep all last snapshots") {
		t.Errorf("forget --keep-last unlimited:\n%s", res.stdout)
	}
}

func TestForgetPolicyAndJSON(t *testing.T) {
	e := newInitEnv(t)
	data := e.makeData()
	var ids []string
	for _, when := range []string{"2024-01-01 10:00:00", "2024-01-01 18:00:00", "2024-01-02 09:00:00", "2024-01-03 09:00:00"} {
		ids = append(ids, backupAt(e, data, when))
	}
	keepTagged := backupAt(e, data, "2023-06-01 00:00:00", "--tag", "keep")

	res := e.ok("forget", "--keep-daily", "2", "--keep-tag", "keep", "--dry-run", "--json")
	var groups []struct {
		Host    string   `json:"host"`
		Paths   []string `json:"paths"`
		Tags    []string `json:"tags"`
		Keep    []map[string]any
		Remove  []map[string]any
		Reasons []struct {
			Snapshot map[string]any `json:"snapshot"`
			Matches  []string       `json:"matches"`
		} `json:"reasons"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &groups); err != nil {
		t.Fatalf("forget --json: %v\n%s", err, res.stdout)
	}
	if len(groups) != 1 || groups[0].Host != "testhost" || len(groups[0].Paths) != 1 || groups[0].Tags != nil {
		t.Fatalf("groups: %+v", groups)
	}
	gr := groups[0]
	if got, want := snapshotIDs(gr.Keep), sorted(ids[3], ids[2], keepTagged); !slices.Equal(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	if got, want := snapshotIDs(gr.Remove), sorted(ids[0], ids[1]); !slices.Equal(got, want) {
		t.Errorf("removed %v, want %v", got, want)
	}
	if len(gr.Reasons) != 3 || !slices.Equal(gr.Reasons[2].Matches, []string{"has tags [keep]"}) || gr.Reasons[0].Snapshot["short_id"] != ids[3][:8] {
		t.Errorf("reasons: %+v", gr.Reasons)
	}
	if got := snapshotIDs(e.snapshots()); len(got) != 5 {
		t.Fatalf("dry run removed snapshots: %v", got)
	}

	// For real, with the text output.
	res = e.ok("forget", "--keep-daily", "2", "--keep-tag", "keep")
	for _, want := range []string{"keep 3 snapshots", "remove 2 snapshots", "daily snapshot", "has tags [keep]", "removed 2 snapshots"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
	if got, want := snapshotIDs(e.snapshots()), sorted(ids[3], ids[2], keepTagged); !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
	// By ID prefix.
	e.ok("forget", ids[2][:10])
	if got, want := snapshotIDs(e.snapshots()), sorted(ids[3], keepTagged); !slices.Equal(got, want) {
		t.Errorf("after forget by ID: %v, want %v", got, want)
	}
	e.fails(1, e.run("forget", "ffffffff"), "no matching ID")
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func TestBackupTTLAndForgetExpired(t *testing.T) {
	e := newInitEnv(t)
	data := e.makeData()
	fresh := backupAt(e, data, time.Now().Format("2006-01-02 15:04:05"), "--ttl", "30d", "--tag", "x")
	old := backupAt(e, data, "2020-01-01 00:00:00", "--ttl", "48h")
	plain := backupAt(e, data, "2020-01-01 00:00:00")
	// cluster backup's spellings work here too: days then a duration, and
	// "0" for never.
	mixed := backupAt(e, data, "2020-01-01 00:00:00", "--ttl", "1d12h")
	never := backupAt(e, data, "2020-01-01 00:00:00", "--ttl", "0")

	byID := map[string]map[string]any{}
	for _, sn := range e.snapshots() {
		byID[sn["id"].(string)] = sn
	}
	exp, err := time.Parse(time.RFC3339, byID[fresh]["expires"].(string))
	if err != nil || exp.Sub(time.Now().Add(30*24*time.Hour)).Abs() > time.Minute {
		t.Errorf("fresh snapshot expires %v (%v), want in 30 days", byID[fresh]["expires"], err)
	}
	if byID[old]["expires"] != "2020-01-03T00:00:00Z" && !strings.HasPrefix(byID[old]["expires"].(string), "2020-01-0") {
		t.Errorf("old snapshot expires %v", byID[old]["expires"])
	}
	for _, id := range []string{plain, never} {
		if _, ok := byID[id]["expires"]; ok {
			t.Errorf("snapshot without --ttl or with --ttl 0 has expires %v", byID[id]["expires"])
		}
	}
	start, _ := time.ParseInLocation("2006-01-02 15:04:05", "2020-01-01 00:00:00", time.Local)
	if got, err := time.Parse(time.RFC3339, fmt.Sprint(byID[mixed]["expires"])); err != nil || !got.Equal(start.Add(36*time.Hour)) {
		t.Errorf("--ttl 1d12h snapshot expires %v (%v), want %v", byID[mixed]["expires"], err, start.Add(36*time.Hour))
	}
	table := e.ok("snapshots").stdout
	if !strings.Contains(table, "Expires") || !strings.Contains(table, exp.Local().Format("2006-01-02 15:04")) || strings.Contains(table, "expires=") {
		t.Errorf("snapshots table:\n%s", table)
	}

	res := e.ok("forget", "--expired")
	if !strings.Contains(res.stdout, "expired 2020-01-0") {
		t.Errorf("forget --expired:\n%s", res.stdout)
	}
	if !strings.Contains(res.stdout, "removed 2 snapshots") {
		t.Errorf("forget --expired removed other than the 48h and 1d12h snapshots:\n%s", res.stdout)
	}
	if got, want := snapshotIDs(e.snapshots()), sorted(fresh, plain, never); !slices.Equal(got, want) {
		t.Errorf("after forget --expired: %v, want %v", got, want)
	}
}

func TestForgetPruneAndLocks(t *testing.T) {
	e := newInitEnv(t)
	data := e.makeData()
	backupAt(e, data, "2024-01-01 10:00:00")
	big := filepath.Join(data, "unique.bin")
	buf := make([]byte, 3<<20)
	rand.Read(buf) // incompressible: the repository grows by its size
	if err := os.WriteFile(big, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	backupAt(e, data, "2024-01-02 10:00:00")
	os.Remove(big)
	backupAt(e, data, "2024-01-03 10:00:00")

	// A live backup's shared lock blocks forget, naming who holds it.
	ctx := context.Background()
	l := e.holdLock(false)
	host, _ := os.Hostname()
	e.fails(1, e.run("forget", "--keep-last", "1"), "locked", "shared lock", host, "PID")
	e.fails(1, e.run("prune"), "locked", "shared lock")
	e.fails(1, e.run("--retry-lock", "300ms", "prune"), "gave up after --retry-lock 300ms", "shared lock")
	// A dry run only reads: the shared lock is no obstacle.
	e.ok("forget", "--keep-last", "1", "--dry-run")
	go func() {
		time.Sleep(400 * time.Millisecond)
		l.Unlock(ctx)
	}()
	before := dirSize(t, e.repo)
	res := e.ok("--retry-lock", "20s", "forget", "--keep-last", "1", "--prune", "--max-unused", "0")
	if !strings.Contains(res.stdout, "removed 2 snapshots") || !strings.Contains(res.stdout, "done: removed") {
		t.Errorf("forget --prune:\n%s", res.stdout)
	}
	after := dirSize(t, e.repo)
	if before-after < 3<<20 {
		t.Errorf("repository shrank by %d bytes, want at least the 3 MiB file only the removed snapshots had", before-after)
	}
	e.ok("check", "--read-data")
	if got := e.repoFiles("locks"); len(got) != 0 {
		t.Errorf("locks left: %v", got)
	}

	// prune --json on a clean repository: nothing to do.
	res = e.ok("prune", "--json")
	var sum map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &sum); err != nil {
		t.Fatalf("prune --json: %v\n%s", err, res.stdout)
	}
	if sum["unused_size"].(float64) != 0 || sum["remove_packs"].(float64) != 0 || sum["snapshots"].(float64) != 1 {
		t.Errorf("prune --json: %v", sum)
	}
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
