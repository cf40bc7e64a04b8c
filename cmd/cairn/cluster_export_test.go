package main

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog/catalogtest"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/testutil"
)

// volumeBackupEnv is a repository holding the cluster backup "b1" of
// namespace shop, written without a cluster: web-0 mounts the claim "data"
// as volume data and an emptyDir "cache"; db-0's claim pg failed to copy.
type volumeBackupEnv struct {
	*testEnv
	data, cache string // the volumes' original trees
	sn          *snapshot.Snapshot
}

func newVolumeBackupEnv(t *testing.T) *volumeBackupEnv {
	e := &volumeBackupEnv{testEnv: newInitEnv(t)}
	e.data, e.cache = filepath.Join(e.dir, "src-data"), filepath.Join(e.dir, "src-cache")
	opt := testutil.DefaultGenOptions(12)
	opt.SmallFiles, opt.LargeFiles = 80, []int64{1<<20 + 77}
	testutil.GenTree(t, e.data, opt)
	opt = testutil.DefaultGenOptions(13)
	opt.SmallFiles, opt.LargeFiles = 30, nil
	testutil.GenTree(t, e.cache, opt)
	e.sn = catalogtest.WriteBackup(t, e.openRepo(), "b1", time.Now().Add(-time.Hour), []catalogtest.Volume{
		{Namespace: "shop", Pod: "web-0", Volume: "data", PVC: "data", Dir: e.data},
		{Namespace: "shop", Pod: "web-0", Volume: "cache", Dir: e.cache},
		{Namespace: "shop", Pod: "db-0", Volume: "pg", PVC: "pg", Error: "pod db-0 is not running (Pending)"},
	})
	return e
}

var exportCompare = testutil.CompareOptions{CompareOwner: true}

func TestExportVolumeToDirectory(t *testing.T) {
	e := newVolumeBackupEnv(t)

	byClaim := filepath.Join(e.dir, "by-claim")
	res := e.ok("cluster", "export-volume", "b1", "--pvc", "shop/data", "--target", byClaim)
	if !strings.Contains(res.stdout, "shop/web-0/data (claim shop/data)") || !strings.Contains(res.stdout, "exported ") {
		t.Errorf("stdout does not say what was exported:\n%s", res.stdout)
	}
	if n := testutil.CompareTrees(t, e.data, byClaim, exportCompare); n < 80 {
		t.Fatalf("only %d entries compared", n)
	}

	// By pod and volume, as an argument and as --volume; an emptyDir has
	// no claim.
	byPod := filepath.Join(e.dir, "by-pod")
	e.ok("cluster", "export-volume", "b1", "shop/web-0/cache", "--target", byPod, "--verify")
	testutil.CompareTrees(t, e.cache, byPod, exportCompare)
	byFlag := filepath.Join(e.dir, "by-flag")
	e.ok("cluster", "export-volume", "b1", "--volume", "shop/web-0/data", "--target", byFlag)
	testutil.CompareTrees(t, e.data, byFlag, exportCompare)

	// A target with files is refused, unless --force.
	e.fails(exitFailure, e.run("cluster", "export-volume", "b1", "--pvc", "shop/data", "--target", byPod), "not empty", "--force")
	e.ok("cluster", "export-volume", "b1", "--pvc", "shop/data", "--target", byPod, "--force")
	if _, err := os.Stat(filepath.Join(byPod, "large-00.bin")); err != nil {
		t.Errorf("--force did not restore over the target: %v", err)
	}
}

func TestExportVolumeTar(t *testing.T) {
	e := newVolumeBackupEnv(t)
	res := e.ok("cluster", "export-volume", "b1", "--pvc", "shop/data", "--archive", "tar")
	if res.stderr != "" {
		t.Errorf("stderr: %s", res.stderr)
	}
	// As `… | ssh vm tar x -C /srv` would: the files land in the directory.
	out := filepath.Join(e.dir, "untarred")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tar", "-x", "-p", "--xattrs", "-C", out)
	cmd.Stdin = strings.NewReader(res.stdout)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar x: %v\n%s", err, b)
	}
	opts := exportCompare
	opts.IgnoreRootMeta = true // an archive has no entry for its root
	if n := testutil.CompareTrees(t, e.data, out, opts); n < 80 {
		t.Fatalf("only %d entries compared", n)
	}
	// No entry is named after the volume or leads anywhere else.
	if bytes.Contains([]byte(res.stdout), []byte("data/large-00.bin")) {
		t.Errorf("the archive names entries below the volume's name, not its root")
	}

	// zip too, with the same names.
	res = e.ok("cluster", "export-volume", "b1", "shop/web-0/cache", "--archive", "zip")
	zr, err := zip.NewReader(strings.NewReader(res.stdout), int64(len(res.stdout)))
	if err != nil {
		t.Fatal(err)
	}
	f, err := zr.Open("link-target.txt")
	if err != nil {
		t.Fatalf("zip: %v", err)
	}
	got, _ := io.ReadAll(f)
	if want, _ := os.ReadFile(filepath.Join(e.cache, "link-target.txt")); !bytes.Equal(got, want) || len(want) == 0 {
		t.Errorf("zip entry link-target.txt: %q, want %q", got, want)
	}
}

func TestExportVolumeErrors(t *testing.T) {
	e := newVolumeBackupEnv(t)
	target := filepath.Join(e.dir, "t")
	e.fails(exitFailure, e.run("cluster", "export-volume", "nosuch", "--pvc", "shop/data", "--target", target),
		"no backup is named \"nosuch\"")
	// A claim the backup does not hold: the error lists what it holds.
	e.fails(exitFailure, e.run("cluster", "export-volume", "b1", "--pvc", "shop/other", "--target", target),
		"backup b1 has no claim shop/other", "shop/web-0/data (claim shop/data)", "shop/web-0/cache", "shop/db-0/pg (claim shop/pg) (failed)")
	e.fails(exitFailure, e.run("cluster", "export-volume", "b1", "shop/web-0/nope", "--archive", "tar"),
		"has no volume shop/web-0/nope")
	// A volume whose copy failed says so, with the reason.
	e.fails(exitFailure, e.run("cluster", "export-volume", "b1", "--pvc", "shop/pg", "--target", target),
		"claim shop/pg", "failed", "pod db-0 is not running (Pending)")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"b1", "--target", target}, "name one volume"},
		{[]string{"b1", "--pvc", "shop/data"}, "--target DIR, or --archive tar"},
		{[]string{"b1", "--pvc", "shop/data", "--target", target, "--archive", "tar"}, "exclude each other"},
		{[]string{"b1", "--pvc", "shop/data", "--archive", "rar"}, "--archive \"rar\" is unknown"},
		{[]string{"b1", "--pvc", "shop/web-0/data", "--target", target}, "--volume"},
		{[]string{"b1", "--pvc", "shop/data", "shop/web-0/data", "--target", target}, "name one volume"},
		{[]string{"b1", "../x", "--target", target}, "names no volume"},
	} {
		e.fails(exitFailure, e.run(append([]string{"cluster", "export-volume"}, c.args...)...), c.want)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("a failed export left %s: %v", target, err)
	}
}

// restic reads the same snapshot: the volume files are where the layout
// says.
func TestExportVolumeSnapshotReadByRestic(t *testing.T) {
	e := newVolumeBackupEnv(t)
	out, err := testutil.RunRestic(t, e.repo, testPassword, "ls", "--recursive", e.sn.ID.String(), "/volumes/shop/web-0/data")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/volumes/shop/web-0/data/large-00.bin", "/volumes/shop/web-0/data/deep-1/deep-2"} {
		if !bytes.Contains(out, []byte(want+"\n")) {
			t.Errorf("restic ls lacks %s:\n%.2000s", want, out)
		}
	}
	out, err = testutil.RunRestic(t, e.repo, testPassword, "dump", e.sn.ID.String(), "/volumes/shop/web-0/data/large-00.bin")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := os.ReadFile(filepath.Join(e.data, "large-00.bin")); !bytes.Equal(out, want) {
		t.Errorf("restic dump of a volume file: %d bytes, want %d", len(out), len(want))
	}
}
