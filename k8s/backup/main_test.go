package backup

import (
	"os"
	"testing"

	"github.com/cairn-backup/cairn/tests/cluster"
)

func TestMain(m *testing.M) {
	os.Exit(cluster.RunShared(m, "k8s/backup"))
}

// needCluster is the package's shared control plane; it skips t when none
// runs.
func needCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	return cluster.NeedShared(t)
}
