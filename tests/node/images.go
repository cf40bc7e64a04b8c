package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/cairn-backup/cairn/deploy/image"
)

// BusyboxImage is a shell and the usual tools, from Debian's
// busybox-static; pods use it with imagePullPolicy: Never.
const BusyboxImage = "cairn.test/busybox:1"

// ImportImage builds an image and imports it into the node's containerd.
func (n *Node) ImportImage(ctx context.Context, s image.Spec) error {
	dir := filepath.Join(n.Dir, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "image-*.tar")
	if err != nil {
		return err
	}
	f.Close()
	defer os.Remove(f.Name())
	if err := image.WriteFile(f.Name(), s); err != nil {
		return err
	}
	return n.ctr(ctx, "images", "import", "--snapshotter", "overlayfs", "--no-unpack=false", f.Name())
}

// importBaseImages imports the pause image the runtime starts every pod
// with and the busybox image.
func (n *Node) importBaseImages(ctx context.Context) error {
	pause := filepath.Join(n.Dir, "images", "pause")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", pause, "github.com/cairn-backup/cairn/tests/node/pause")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the pause program: %v: %s", err, out)
	}
	if err := n.ImportImage(ctx, image.Spec{Ref: sandboxImage, Files: []image.File{{Path: "/pause", Source: pause}},
		Entrypoint: []string{"/pause"}}); err != nil {
		return err
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox not found: install the Debian package busybox-static (tests/setup.sh does)")
	}
	files := []image.File{{Path: "/bin/busybox", Source: bb}, {Path: "/tmp", Dir: true}}
	for _, tool := range []string{"sh", "ls", "cat", "echo", "sleep", "mkdir", "rm", "cp", "mv", "touch", "sha256sum",
		"find", "wc", "head", "tail", "grep", "sed", "test", "httpd", "wget", "sync", "date", "id", "env", "true", "false", "dd", "stat", "du", "df", "mount", "ps", "kill", "tar", "chmod", "ln"} {
		files = append(files, image.File{Path: "/bin/" + tool, Symlink: "busybox"})
	}
	return n.ImportImage(ctx, image.Spec{Ref: BusyboxImage, Files: files, Cmd: []string{"sh"},
		Env: []string{"PATH=/bin"}})
}
