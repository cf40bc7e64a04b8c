package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/tests/testutil"
)

// The round-trip tree: empty and 0-byte files, a 50 MiB file, 10,000
// small files, deep and unicode names, symlinks, modes and mtimes.
func bigTreeOptions() testutil.GenOptions {
	o := testutil.DefaultGenOptions(7)
	o.SmallFiles = 10000
	o.MaxSmallSize = 8 << 10
	o.LargeFiles = []int64{50 << 20, 0}
	o.Depth = 12
	o.EmptyFiles = 5
	o.EmptyDirs = 5
	return o
}

// restoreOpts compares restored trees: the snapshot holds the source's full
// path, so the roots are the source dir and its copy below the target.
var restoreOpts = testutil.CompareOptions{IgnoreRootMeta: false}

func TestCairnRoundTripAndResticReadsIt(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	testutil.GenTree(t, src, bigTreeOptions())
	repoDir := filepath.Join(tmp, "repo")
	mustCairn(t, repoDir, "init")
	mustCairn(t, repoDir, "backup", src, "--tag", "e2e")

	// cairn restores byte-identical, with metadata.
	target := filepath.Join(tmp, "restore-cairn")
	mustCairn(t, repoDir, "restore", "latest", "--target", target, "--verify")
	n := testutil.CompareTrees(t, src, filepath.Join(target, src), restoreOpts)
	if n < 10000 {
		t.Fatalf("only %d entries compared", n)
	}
	mustCairn(t, repoDir, "check", "--read-data")

	// Every restic present (old and current) accepts and restores it.
	for i, bin := range testutil.ResticBins(t) {
		t.Setenv("CAIRN_RESTIC", bin)
		if out, err := testutil.RunRestic(t, repoDir, password, "check", "--read-data"); err != nil {
			t.Fatalf("%s check --read-data on a cairn repository: %v\n%s", bin, err, out)
		}
		rtarget := filepath.Join(tmp, fmt.Sprintf("restore-restic-%d", i))
		if out, err := testutil.RunRestic(t, repoDir, password, "restore", "latest", "--target", rtarget); err != nil {
			t.Fatalf("%s restore: %v\n%s", bin, err, out)
		}
		testutil.CompareTrees(t, src, filepath.Join(rtarget, src), restoreOpts)
		os.RemoveAll(rtarget)
	}

	// restic lists the snapshot with our tag and path.
	out, err := testutil.RunRestic(t, repoDir, password, "snapshots", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var sns []struct {
		Paths []string `json:"paths"`
		Tags  []string `json:"tags"`
	}
	if err := json.Unmarshal(out, &sns); err != nil || len(sns) != 1 || sns[0].Paths[0] != src || len(sns[0].Tags) != 1 || sns[0].Tags[0] != "e2e" {
		t.Fatalf("restic snapshots: %s (%v)", out, err)
	}
}

func TestCairnReadsResticRepositories(t *testing.T) {
	for _, bin := range testutil.ResticBins(t) {
		for _, version := range []string{"1", "2"} {
			t.Run(filepath.Base(bin)+"-v"+version, func(t *testing.T) {
				t.Setenv("CAIRN_RESTIC", bin)
				resticReposRoundTrip(t, version)
			})
		}
	}
}

func resticReposRoundTrip(t *testing.T, version string) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	o := testutil.DefaultGenOptions(11)
	o.LargeFiles = []int64{7 << 20}
	testutil.GenTree(t, src, o)
	repoDir := filepath.Join(tmp, "repo")
	if out, err := testutil.RunRestic(t, repoDir, password, "init", "--repository-version", version); err != nil {
		t.Fatalf("restic init: %v\n%s", err, out)
	}
	if out, err := testutil.RunRestic(t, repoDir, password, "backup", "--tag", "from-restic", src); err != nil {
		t.Fatalf("restic backup: %v\n%s", err, out)
	}
	var sns []map[string]any
	r := mustCairn(t, repoDir, "snapshots", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &sns); err != nil || len(sns) != 1 {
		t.Fatalf("cairn snapshots --json: %v\n%s", err, r.stdout)
	}
	mustCairn(t, repoDir, "check", "--read-data")
	target := filepath.Join(tmp, "restore")
	mustCairn(t, repoDir, "restore", "latest", "--target", target, "--verify")
	testutil.CompareTrees(t, src, filepath.Join(target, src), restoreOpts)

	// cairn can add to restic's repository, and restic still checks it.
	mustCairn(t, repoDir, "backup", src)
	if out, err := testutil.RunRestic(t, repoDir, password, "check", "--read-data"); err != nil {
		t.Fatalf("restic check after a cairn backup: %v\n%s", err, out)
	}
}

func TestDedupAndParent(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	o := testutil.DefaultGenOptions(3)
	o.LargeFiles = []int64{20 << 20}
	testutil.GenTree(t, src, o)
	repoDir := filepath.Join(tmp, "repo")
	mustCairn(t, repoDir, "init")
	mustCairn(t, repoDir, "backup", src)
	first := dirSize(t, repoDir)

	// Same data, no parent: everything is read again but nothing is stored.
	r := mustCairn(t, repoDir, "backup", "--force", "--json", src)
	var sum struct {
		FilesNew, FilesChanged, FilesUnmodified uint64
		DataAdded                               uint64 `json:"data_added"`
		DataBlobs                               int    `json:"data_blobs"`
		TotalFiles                              uint64 `json:"total_files_processed"`
	}
	if err := json.Unmarshal([]byte(lastLine(r.stdout)), &sum); err != nil {
		t.Fatalf("backup --json: %v\n%s", err, r.stdout)
	}
	// Only trees may be new (reading files changed their atimes).
	if sum.DataBlobs != 0 || sum.DataAdded > 64<<10 {
		t.Fatalf("second backup of identical data added %d data blobs, %d bytes", sum.DataBlobs, sum.DataAdded)
	}
	if grow := dirSize(t, repoDir) - first; grow > 64<<10 {
		t.Fatalf("repository grew by %d bytes for identical data", grow)
	}

	// With the parent (picked automatically), unchanged files are not read.
	r = mustCairn(t, repoDir, "backup", "--json", src)
	var sum2 struct {
		FilesUnmodified uint64 `json:"files_unmodified"`
		FilesNew        uint64 `json:"files_new"`
		FilesChanged    uint64 `json:"files_changed"`
		TotalFiles      uint64 `json:"total_files_processed"`
	}
	if err := json.Unmarshal([]byte(lastLine(r.stdout)), &sum2); err != nil {
		t.Fatalf("backup --json: %v\n%s", err, r.stdout)
	}
	if sum2.FilesUnmodified == 0 || sum2.FilesUnmodified != sum2.TotalFiles || sum2.FilesNew+sum2.FilesChanged != 0 {
		t.Fatalf("backup with parent: %+v (all files should be unmodified)\n%s", sum2, r.stdout)
	}
}

func lastLine(s string) string {
	end := len(s)
	for end > 0 && (s[end-1] == '\n' || s[end-1] == '\r') {
		end--
	}
	start := end
	for start > 0 && s[start-1] != '\n' {
		start--
	}
	return s[start:end]
}
