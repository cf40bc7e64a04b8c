package install

import (
	"os"
	"testing"

	"github.com/cairn-backup/cairn/tests/cluster"
)

// TestMain starts one control plane for the package's cluster tests.
func TestMain(m *testing.M) {
	os.Exit(cluster.RunShared(m, "k8s/install"))
}
