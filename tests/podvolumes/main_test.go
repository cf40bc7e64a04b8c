// Package podvolumes tests pod volume backups end to end: a real control
// plane, the real cairn binary as node agents and as the CLI, and restic
// reading the result. No kubelet runs: the tests play the node's part,
// making the pods' kubelet directories under a temporary kubelet root.
package podvolumes

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/tests/cluster"
)

var cairnBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cairn-podvolumes-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cairnBin = filepath.Join(dir, "cairn")
	build := exec.Command("go", "build", "-o", cairnBin, "github.com/cairn-backup/cairn/cmd/cairn")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build cairn:", err)
		os.Exit(1)
	}
	code := cluster.RunShared(m, "tests/podvolumes")
	os.RemoveAll(dir)
	os.Exit(code)
}
