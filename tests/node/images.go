package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

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
	if err := BuildStatic(ctx, "github.com/cairn-backup/cairn/tests/node/pause", pause); err != nil {
		return err
	}
	if err := n.ImportImage(ctx, image.Spec{Ref: sandboxImage, Files: []image.File{{Path: "/pause", Source: pause}},
		Entrypoint: []string{"/pause"}}); err != nil {
		return err
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox not found: install the Debian package busybox-static (tests/setup.sh does)")
	}
	files := []image.File{{Path: "/bin/busybox", Source: bb}, {Path: "/tmp", Dir: true, Mode: 0o1777}}
	for _, tool := range []string{"sh", "ls", "cat", "echo", "sleep", "mkdir", "rm", "cp", "mv", "touch", "sha256sum",
		"find", "wc", "head", "tail", "grep", "sed", "test", "httpd", "wget", "sync", "date", "id", "env", "true", "false", "dd", "stat", "du", "df", "mount", "ps", "kill", "tar", "chmod", "ln"} {
		files = append(files, image.File{Path: "/bin/" + tool, Symlink: "busybox"})
	}
	return n.ImportImage(ctx, image.Spec{Ref: BusyboxImage, Files: files, Cmd: []string{"sh"},
		Env: []string{"PATH=/bin"}})
}

// FileServerImage serves files like the drill's nginx: /fileserver
// (tests/node/fileserver) with -root /usr/share/nginx/html -addr :8080 by
// default, logging each request.
const (
	FileServerImage = "cairn.test/fileserver:1"
	FileServerRoot  = "/usr/share/nginx/html"
	FileServerPort  = 8080
)

// ImportFileServer builds the file server and imports its image; it
// returns the image's reference (FileServerImage).
func (n *Node) ImportFileServer(ctx context.Context) (string, error) {
	bin := filepath.Join(n.Dir, "images", "fileserver")
	if err := BuildStatic(ctx, "github.com/cairn-backup/cairn/tests/node/fileserver", bin); err != nil {
		return "", err
	}
	err := n.ImportImage(ctx, image.Spec{Ref: FileServerImage,
		Files:      []image.File{{Path: "/fileserver", Source: bin}, {Path: FileServerRoot, Dir: true}, {Path: "/tmp", Dir: true, Mode: 0o1777}},
		Entrypoint: []string{"/fileserver"},
		Cmd:        []string{"-root", FileServerRoot, "-addr", ":" + strconv.Itoa(FileServerPort)}})
	return FileServerImage, err
}

// ImportCairn builds cairn statically and imports the image `make image`
// builds; it returns its reference, ghcr.io/cairn-backup/cairn:<version>,
// which is also the restore's default helper image.
func (n *Node) ImportCairn(ctx context.Context) (string, error) {
	bin := filepath.Join(n.Dir, "images", "cairn")
	if err := BuildStatic(ctx, "github.com/cairn-backup/cairn/cmd/cairn", bin); err != nil {
		return "", err
	}
	version, err := image.BinaryVersion(bin)
	if err != nil {
		return "", err
	}
	spec, err := image.Cairn(bin, image.CAFile, version)
	if err != nil {
		return "", err
	}
	return spec.Ref, n.ImportImage(ctx, spec)
}

// BuildStatic builds a Go package of this module as a static binary for
// an image. Every caller uses the same flags, so that the build cache
// serves them all (a cold build of cairn takes minutes).
func BuildStatic(ctx context.Context, pkg, out string) error {
	build := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v: %s", pkg, err, b)
	}
	return nil
}

// HostPath is where the host sees path as the node's processes see it:
// through the mount namespace they share, so that the kubelet's volume
// mounts (pods/<uid>/volumes/...) show their contents.
func (n *Node) HostPath(path string) string {
	return "/proc/" + strconv.Itoa(n.holder) + "/root" + path
}
