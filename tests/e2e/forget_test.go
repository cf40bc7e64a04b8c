package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/testutil"
)

// forgetGroup is the part of `forget --json` both tools print that the
// comparison needs.
type forgetGroup struct {
	Host  string   `json:"host"`
	Paths []string `json:"paths"`
	Tags  []string `json:"tags"`
	Keep  []struct {
		ID string `json:"id"`
	} `json:"keep"`
	Remove []struct {
		ID string `json:"id"`
	} `json:"remove"`
	Reasons []struct {
		Matches  []string       `json:"matches"`
		Counters map[string]int `json:"counters"`
	} `json:"reasons"`
}

// decision is one group's outcome in comparable form: kept IDs (newest
// first) with their reasons, and the sorted removed IDs.
type decision struct {
	keep   []string
	remove []string
}

// decisions parses forget --json output; counters are compared only when
// withCounters is set (restic 0.19 leaves them out).
func decisions(t *testing.T, tool string, out []byte, withCounters bool) map[string]decision {
	t.Helper()
	var groups []forgetGroup
	if err := json.Unmarshal(out, &groups); err != nil {
		t.Fatalf("%s forget --json: %v\n%s", tool, err, out)
	}
	res := map[string]decision{}
	for _, g := range groups {
		key := g.Host + "|" + strings.Join(g.Paths, ",") + "|" + strings.Join(g.Tags, ",")
		if len(g.Reasons) != len(g.Keep) {
			t.Fatalf("%s: group %s: %d reasons for %d kept snapshots", tool, key, len(g.Reasons), len(g.Keep))
		}
		var d decision
		for i, k := range g.Keep {
			entry := fmt.Sprintf("%s %q", k.ID[:8], g.Reasons[i].Matches)
			if withCounters {
				counters, _ := json.Marshal(g.Reasons[i].Counters)
				entry += " " + string(counters)
			}
			d.keep = append(d.keep, entry)
		}
		for _, r := range g.Remove {
			d.remove = append(d.remove, r.ID[:8])
		}
		slices.Sort(d.remove)
		if _, dup := res[key]; dup {
			t.Fatalf("%s: group %s printed twice", tool, key)
		}
		res[key] = d
	}
	return res
}

// fillSnapshots writes n more snapshots by copying the two template
// snapshots (one per source path) with times spread over about three years
// in three time zones, gaps from seconds to weeks, three hosts and some tags.
func fillSnapshots(t *testing.T, repoDir string, n int) {
	t.Helper()
	ctx := context.Background()
	be, err := repo.OpenLocal(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, password, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	templates, err := snapshot.LoadAllSnapshots(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(42, 7))
	zones := []*time.Location{time.UTC, time.FixedZone("", 5*3600+1800), time.FixedZone("", -8*3600)}
	gaps := []time.Duration{17 * time.Second, 41 * time.Minute, 3 * time.Hour, 11 * time.Hour, 26 * time.Hour, 53 * time.Hour, 9 * 24 * time.Hour, 33 * 24 * time.Hour}
	tagSets := [][]string{nil, nil, {"daily"}, {"important"}, {"daily", "x"}, {"x", "important"}}
	when := time.Date(2021, 11, 28, 22, 30, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		when = when.Add(gaps[rng.IntN(len(gaps))])
		sn := *templates[rng.IntN(len(templates))]
		sn.Parent, sn.Summary = nil, nil
		sn.Time = when.In(zones[rng.IntN(len(zones))])
		sn.Hostname = []string{"h1", "h2", "h3"}[rng.IntN(3)]
		sn.Tags = tagSets[rng.IntN(len(tagSets))]
		if _, err := snapshot.SaveSnapshot(ctx, r, &sn); err != nil {
			t.Fatal(err)
		}
	}
}

// cairn and restic decide the same for many policies on ~200 snapshots.
func TestForgetSameAsRestic(t *testing.T) {
	testutil.ResticBin(t)
	tmp := t.TempDir()
	srcA, srcB := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	for _, d := range []string{srcA, srcB} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "f.txt"), []byte("content of "+d), 0o644)
	}
	repoDir := filepath.Join(tmp, "repo")
	mustCairn(t, repoDir, "init")
	// Real backups with --time/--host/--tag, then many copies of them.
	for i, when := range []string{"2021-11-01 08:00:00", "2021-11-01 08:00:30", "2021-11-03 23:59:59", "2021-11-04 00:00:00"} {
		src := []string{srcA, srcB}[i%2]
		mustCairn(t, repoDir, "backup", src, "--time", when, "--host", []string{"h1", "h2"}[i/2], "--tag", "important")
	}
	fillSnapshots(t, repoDir, 196)
	if n := len(strings.Fields(mustCairn(t, repoDir, "list", "snapshots").stdout)); n != 200 {
		t.Fatalf("%d snapshots, want 200", n)
	}

	policies := [][]string{
		{"--keep-last", "7"},
		{"--keep-hourly", "30"},
		{"--keep-daily", "14"},
		{"--keep-weekly", "8"},
		{"--keep-monthly", "6"},
		{"--keep-yearly", "3"},
		{"--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12", "--keep-yearly", "5"},
		{"--keep-within", "45d"},
		{"--keep-within", "1y2m3d4h", "--keep-last", "2"},
		{"--keep-within-daily", "20d", "--keep-within-weekly", "3m"},
		{"--keep-within-hourly", "2d", "--keep-within-monthly", "1y", "--keep-within-yearly", "5y"},
		{"--keep-tag", "important", "--keep-tag", "daily,x", "--keep-last", "1"},
		{"--keep-last", "3", "--group-by", "host"},
		{"--keep-daily", "5", "--group-by", "tags"},
		{"--keep-weekly", "3", "--keep-hourly", "4", "--group-by", ""},
		{"--keep-monthly", "3", "--host", "h1"},
		{"--keep-last", "2", "--tag", "important"},
		{"--keep-daily", "4", "--path", srcA, "--group-by", "host,paths,tags"},
		{"--keep-hourly", "10", "--keep-within", "3m"},
	}
	for _, bin := range testutil.ResticBins(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			t.Setenv("CAIRN_RESTIC", bin)
			legacy := testutil.ResticOlderThan(testutil.ResticVersion(t), 0, 17)
			for _, p := range policies {
				args := append([]string{"forget", "--dry-run", "--json"}, p...)
				cargs := args
				if legacy { // restic 0.16 and older do not keep the oldest snapshot
					cargs = append(slices.Clone(args), "--no-keep-oldest")
				}
				cres := mustCairn(t, repoDir, cargs...)
				rout, err := testutil.RunRestic(t, repoDir, password, args...)
				if err != nil {
					t.Fatalf("restic %v: %v", p, err)
				}
				withCounters := bytes.Contains(rout, []byte(`"counters":{`))
				got, want := decisions(t, "cairn", []byte(cres.stdout), withCounters), decisions(t, "restic", rout, withCounters)
				if len(got) != len(want) {
					t.Errorf("%v: cairn made %d groups, restic %d", p, len(got), len(want))
				}
				kept, removed := 0, 0
				for key, w := range want {
					g, ok := got[key]
					if !ok {
						t.Errorf("%v: cairn lacks group %s", p, key)
						continue
					}
					if !slices.Equal(g.keep, w.keep) {
						t.Errorf("%v: group %s: kept\n  cairn  %q\n  restic %q", p, key, g.keep, w.keep)
					}
					if !slices.Equal(g.remove, w.remove) {
						t.Errorf("%v: group %s: removed\n  cairn  %q\n  restic %q", p, key, g.remove, w.remove)
					}
					kept += len(w.keep)
					removed += len(w.remove)
				}
				t.Logf("%-70s %3d groups, %3d kept, %3d removed: same", strings.Join(p, " "), len(want), kept, removed)
				if removed == 0 || kept == 0 {
					t.Errorf("%v: policy keeps %d and removes %d: not a useful comparison", p, kept, removed)
				}
			}
		})
	}
	if n := len(strings.Fields(mustCairn(t, repoDir, "list", "snapshots").stdout)); n != 200 {
		t.Fatalf("dry runs changed the repository: %d snapshots", n)
	}
}

// forget --prune removes exactly the data only removed snapshots had; both
// tools' checks pass and every kept snapshot restores byte for byte.
func TestForgetPrune(t *testing.T) {
	testutil.ResticBin(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	o := testutil.DefaultGenOptions(5)
	o.SmallFiles, o.LargeFiles = 80, []int64{2 << 20}
	testutil.GenTree(t, src, o)
	repoDir := filepath.Join(tmp, "repo")
	mustCairn(t, repoDir, "init")

	const versions, unique = 6, 1 << 20
	ids := make([]string, versions)
	for i := range versions {
		// Each version has a random file no other version has.
		os.Remove(filepath.Join(src, fmt.Sprintf("unique-%d.bin", i-1)))
		buf := make([]byte, unique)
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("unique-%d.bin", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"backup", "--json", src, "--time", fmt.Sprintf("2024-03-0%d 12:00:00", i+1)}
		if i == 0 {
			args = append(args, "--tag", "keep")
		}
		res := mustCairn(t, repoDir, args...)
		var sum struct {
			SnapshotID string `json:"snapshot_id"`
		}
		json.Unmarshal([]byte(res.stdout[strings.LastIndex(strings.TrimSpace(res.stdout), "\n")+1:]), &sum)
		ids[i] = sum.SnapshotID
		if out, err := exec.Command("cp", "-a", src, filepath.Join(tmp, fmt.Sprintf("v%d", i))).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
	}
	before := dirSize(t, filepath.Join(repoDir, "data"))
	// Keep the newest two and the tagged first one: three go, and with them
	// their unique files.
	res := mustCairn(t, repoDir, "forget", "--keep-last", "2", "--keep-tag", "keep", "--prune", "--max-unused", "0")
	for _, want := range []string{"removed 3 snapshots", "done: removed"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("forget --prune output lacks %q:\n%s", want, res.stdout)
		}
	}
	freed := before - dirSize(t, filepath.Join(repoDir, "data"))
	if want := int64(3 * unique); freed < want || freed > want+256<<10 {
		t.Errorf("prune freed %d bytes, want the %d bytes of the removed snapshots' unique files (+ their trees)", freed, want)
	}
	t.Logf("pack data %d -> %d bytes (freed %d)", before, before-freed, freed)
	mustCairn(t, repoDir, "check", "--read-data")
	if out, err := testutil.RunRestic(t, repoDir, password, "check", "--read-data"); err != nil {
		t.Fatalf("restic check --read-data: %v\n%s", err, out)
	}
	left := strings.Fields(mustCairn(t, repoDir, "list", "snapshots").stdout)
	keptIdx := []int{0, 4, 5}
	want := []string{ids[0], ids[4], ids[5]}
	slices.Sort(left)
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Fatalf("snapshots left %v, want %v", left, want)
	}
	for _, i := range keptIdx {
		target := filepath.Join(tmp, fmt.Sprintf("restore-%d", i))
		mustCairn(t, repoDir, "restore", ids[i], "--target", target)
		testutil.CompareTrees(t, filepath.Join(tmp, fmt.Sprintf("v%d", i)), filepath.Join(target, src), testutil.CompareOptions{})
	}
}
