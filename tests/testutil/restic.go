package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ResticBin returns the path of the restic program used by interoperability
// tests. The environment variable CAIRN_RESTIC, when set, names it (a path or
// a program name looked up in PATH); otherwise "restic" is looked up in PATH.
//
// When restic is not in PATH the test is skipped, except when the environment
// variable CI is set (CI must install restic), where the test fails. A
// CAIRN_RESTIC that names no usable program always fails the test.
func ResticBin(t testing.TB) string {
	t.Helper()
	name, fromEnv := os.LookupEnv("CAIRN_RESTIC")
	if !fromEnv || name == "" {
		name = "restic"
	}
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if fromEnv && name != "" {
		// An explicit choice that does not work is a mistake, not a reason to skip.
		t.Fatalf("restic program %q (from CAIRN_RESTIC) not usable: %v", name, err)
	}
	msg := "restic not found in PATH: install it with `apt-get install restic` " +
		"(or point CAIRN_RESTIC at a restic binary)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// ResticVersion returns the version of the restic program from ResticBin,
// e.g. "0.14.0". It fails the test if the version cannot be determined.
func ResticVersion(t testing.TB) string {
	t.Helper()
	bin := ResticBin(t)
	out, err := exec.CommandContext(t.Context(), bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	// "restic 0.14.0 compiled with go1.19.8 on linux/amd64"
	f := strings.Fields(string(out))
	if len(f) < 2 || f[0] != "restic" {
		t.Fatalf("%s version: unexpected output %q", bin, out)
	}
	return f[1]
}

// RunRestic runs restic (see ResticBin) with args against the repository repo
// using password. The repository and password are passed through the
// environment (RESTIC_REPOSITORY, RESTIC_PASSWORD); every other RESTIC_*
// variable of the test process is removed, and --no-cache is added so that no
// cache is written outside the test's directories.
//
// It returns restic's standard output. On failure the error names the
// command and carries restic's standard error.
func RunRestic(t testing.TB, repo, password string, args ...string) (stdout []byte, err error) {
	t.Helper()
	bin := ResticBin(t)
	full := append([]string{"--no-cache"}, args...)
	cmd := exec.CommandContext(t.Context(), bin, full...)
	cmd.Env = append(resticFreeEnv(),
		"RESTIC_REPOSITORY="+repo,
		"RESTIC_PASSWORD="+password,
	)
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("restic %s (repo %s): %w\nstderr:\n%s",
			strings.Join(full, " "), repo, err, strings.TrimRight(errb.String(), "\n"))
	}
	return out.Bytes(), nil
}

// resticFreeEnv returns the process environment without RESTIC_* variables.
func resticFreeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RESTIC_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// ResticBins returns ResticBin and, when tests/setup.sh has built it, the
// current restic (0.19.1) from the user cache: tests that compare behaviour
// run against both an old and a new restic.
func ResticBins(t testing.TB) []string {
	t.Helper()
	bins := []string{ResticBin(t)}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	if p := filepath.Join(cache, "cairn", "bin", "restic-0.19.1"); p != bins[0] {
		if _, err := os.Stat(p); err == nil {
			bins = append(bins, p)
		}
	}
	return bins
}

// ResticOlderThan reports whether version v ("0.14.0") is before major.minor.
func ResticOlderThan(v string, major, minor int) bool {
	var a, b int
	fmt.Sscanf(v, "%d.%d", &a, &b)
	return a < major || (a == major && b < minor)
}
