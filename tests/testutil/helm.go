package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// HelmVersion is the helm tests/setup.sh builds (from the Go module proxy).
const HelmVersion = "v4.3.2"

// HelmBin finds the helm binary: $CAIRN_HELM, helm on PATH, or the one
// tests/setup.sh builds into ~/.cache/cairn/bin. Without it the test is
// skipped, except in CI, where it fails.
func HelmBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CAIRN_HELM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	p := filepath.Join(cache, "cairn", "bin", "helm")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := "helm not found: run tests/setup.sh (GOBIN=~/.cache/cairn/bin go install helm.sh/helm/v4/cmd/helm@" + HelmVersion + ")"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
