package fusefs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog/catalogtest"
	"github.com/cairn-backup/cairn/tests/testutil"
)

// A cluster backup's volumes show under pods/<pod>/<volume> and, for
// claims, under pvcs/<claim>, with the original files, modes and times.
func TestMountVolumesByPodAndClaim(t *testing.T) {
	r, dir := newRepo(t)
	src := t.TempDir()
	data, logs := filepath.Join(src, "data"), filepath.Join(src, "logs")
	opt := testutil.DefaultGenOptions(21)
	opt.SmallFiles, opt.LargeFiles = 60, []int64{1<<20 + 3}
	testutil.GenTree(t, data, opt)
	opt = testutil.DefaultGenOptions(22)
	opt.SmallFiles, opt.LargeFiles = 20, nil
	testutil.GenTree(t, logs, opt)
	catalogtest.WriteBackup(t, r, "b1", time.Date(2024, 6, 1, 2, 0, 0, 0, time.UTC), []catalogtest.Volume{
		// The shared claim "shared" is copied once, from web-1.
		{Namespace: "shop", Pod: "web-0", Volume: "files", PVC: "shared"},
		{Namespace: "shop", Pod: "web-1", Volume: "files", PVC: "shop/shared", Dir: data},
		{Namespace: "shop", Pod: "web-1", Volume: "tmp", Dir: logs},
		{Namespace: "shop", Pod: "db-0", Volume: "pg", PVC: "pg", Error: "pod db-0 is not running"},
	})
	m, _ := mountRepo(t, dir, Options{})

	base := filepath.Join(m.Dir, "namespaces", "shop", "b1")
	if got := readDirNames(t, base); !slices.Equal(got, []string{"pods", "pvcs", "resources"}) {
		t.Fatalf("%s = %v", base, got)
	}
	// Only claims with data: pg failed, tmp has no claim.
	if got := readDirNames(t, filepath.Join(base, "pvcs")); !slices.Equal(got, []string{"shared"}) {
		t.Fatalf("pvcs = %v, want [shared]", got)
	}
	cmp := testutil.CompareOptions{CompareOwner: true}
	if n := testutil.CompareTrees(t, data, filepath.Join(base, "pvcs", "shared"), cmp); n < 60 {
		t.Fatalf("only %d entries compared", n)
	}
	testutil.CompareTrees(t, data, filepath.Join(base, "pods", "web-1", "files"), cmp)
	testutil.CompareTrees(t, logs, filepath.Join(base, "pods", "web-1", "tmp"), cmp)
	if _, err := os.Stat(filepath.Join(base, "pods", "web-0")); !os.IsNotExist(err) {
		t.Errorf("pods/web-0 (no copy of its own): %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "pvcs", "pg")); !os.IsNotExist(err) {
		t.Errorf("pvcs/pg (failed): %v", err)
	}
}

// A backup without claims has no pvcs directory.
func TestMountNoClaimsNoPVCs(t *testing.T) {
	r, dir := newRepo(t)
	k8sBackup(t, r, "nightly", time.Date(2024, 6, 1, 2, 0, 0, 0, time.UTC), "x\n")
	m, _ := mountRepo(t, dir, Options{})
	if got := readDirNames(t, filepath.Join(m.Dir, "namespaces", "ns1", "nightly")); !slices.Equal(got, []string{"pods", "resources"}) {
		t.Fatalf("got %v", got)
	}
}
