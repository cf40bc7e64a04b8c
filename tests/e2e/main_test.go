// Package e2e runs the real cairn binary against real repositories, next
// to the real restic program.
package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var cairnBin string

// cacheHome is the XDG_CACHE_HOME of every program a test runs: a cache, if any, goes
// there and never into the user's ~/.cache (which holds the test tools).
var cacheHome string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cairn-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cairnBin = filepath.Join(dir, "cairn")
	cacheHome = filepath.Join(dir, "cache")
	build := exec.Command("go", "build", "-o", cairnBin, "github.com/cairn-backup/cairn/cmd/cairn")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build cairn:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const password = "e2e-password"

// result is what one cairn run printed and how it exited.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// cairn runs the binary with the repository and password in its environment.
func cairn(t testing.TB, repoDir string, args ...string) result {
	t.Helper()
	return cairnEnv(t, []string{"CAIRN_REPOSITORY=" + repoDir, "CAIRN_PASSWORD=" + password}, args...)
}

func cairnEnv(t testing.TB, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(cairnBin, args...)
	cmd.Env = append(cleanEnv(), "CAIRN_KDF_N=1024")
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run cairn %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// mustCairn fails the test unless cairn exits 0.
func mustCairn(t testing.TB, repoDir string, args ...string) result {
	t.Helper()
	r := cairn(t, repoDir, args...)
	if r.code != 0 {
		t.Fatalf("cairn %s: %v", strings.Join(args, " "), r)
	}
	return r
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CAIRN_") || strings.HasPrefix(kv, "RESTIC_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "XDG_CACHE_HOME="+cacheHome)
}

// dirSize sums the sizes of the files below dir.
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
