package backup

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/cluster"
)

// testCluster is one real control plane shared by the package's tests; nil
// when the binaries are missing outside CI (tests that need it skip).
var testCluster *cluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	bin, err := cluster.FindBinaries()
	if err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "k8s/backup tests:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "k8s/backup tests: no control plane:", err)
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "cairn-k8s-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	testCluster, err = cluster.Start(ctx, cluster.Options{BinDir: bin, Dir: dir})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s/backup tests: start control plane:", err)
		return 1
	}
	defer testCluster.Stop()
	return m.Run()
}

// needCluster skips a test when no control plane runs.
func needCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	if testCluster == nil {
		t.Skip("no control plane (run tests/cluster/build-binaries.sh)")
	}
	return testCluster
}
