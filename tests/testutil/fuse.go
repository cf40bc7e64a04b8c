package testutil

import (
	"os"
	"testing"
)

// NeedFUSE skips a test that mounts a file system when /dev/fuse is
// missing, and fails it in CI, where the mount tests must run.
func NeedFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		msg := "no /dev/fuse: FUSE mount tests need it (and root): " + err.Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}
