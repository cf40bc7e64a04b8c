package cluster

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// shared is the control plane RunShared started for the tests of one
// package (each test binary has its own); nil when none runs.
var shared *Cluster

// RunShared is a package's TestMain: it starts one control plane shared by
// all the package's tests, runs them and stops it. Without the binaries
// the tests run anyway (those that need the cluster skip through
// NeedShared), except in CI, where that fails the run. name prefixes the
// messages.
func RunShared(m *testing.M, name string) int {
	bin, err := FindBinaries()
	if err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, name+" tests:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, name+" tests: no control plane:", err)
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "cairn-k8s-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	shared, err = Start(ctx, Options{BinDir: bin, Dir: dir})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+" tests: start control plane:", err)
		return 1
	}
	defer shared.Stop()
	return m.Run()
}

// NeedShared returns the control plane RunShared started, and skips t when
// none runs.
func NeedShared(t testing.TB) *Cluster {
	t.Helper()
	if shared == nil {
		t.Skip("no control plane (run tests/cluster/build-binaries.sh)")
	}
	return shared
}
