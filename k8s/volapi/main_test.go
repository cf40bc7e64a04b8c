package volapi

import (
	"os"
	"testing"

	"github.com/cairn-backup/cairn/tests/cluster"
)

// TestMain starts one control plane for all the package's tests.
func TestMain(m *testing.M) {
	os.Exit(cluster.RunShared(m, "k8s/volapi"))
}
