package image

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestCairnImage builds cairn's image from a real static build, reads it
// back as an image and runs the binary it holds.
func TestCairnImage(t *testing.T) {
	if _, err := os.Stat(CAFile); err != nil {
		t.Skip("no CA bundle on this machine:", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "cairn")
	// The flags of tests/node.BuildStatic, so that both share the build cache.
	build := exec.Command("go", "build", "-ldflags=-X main.version=9.8.7-test", "-o", bin, "github.com/cairn-backup/cairn/cmd/cairn")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build cairn: %v: %s", err, out)
	}
	version, err := BinaryVersion(bin)
	if err != nil || version != "9.8.7-test" {
		t.Fatalf("BinaryVersion = %q, %v", version, err)
	}
	spec, err := Cairn(bin, CAFile, version)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "image.tar")
	if err := WriteFile(file, spec); err != nil {
		t.Fatal(err)
	}

	tag, err := name.NewTag("ghcr.io/cairn-backup/cairn:9.8.7-test")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(file, &tag)
	if err != nil {
		t.Fatalf("read the image back: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{CairnBinary}) || cf.Config.User != "0:0" || cf.OS != "linux" {
		t.Errorf("config: entrypoint %q user %q os %q", cf.Config.Entrypoint, cf.Config.User, cf.OS)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	entries := map[string]*tar.Header{}
	var binary []byte
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[strings.TrimSuffix(h.Name, "/")] = h
		if h.Name == strings.TrimPrefix(CairnBinary, "/") {
			if binary, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if h := entries["tmp"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o1777 {
		t.Errorf("/tmp: %+v", h)
	}
	for _, f := range []string{"etc/ssl/certs/ca-certificates.crt", "etc/passwd", "etc/group"} {
		if entries[f] == nil {
			t.Errorf("%s missing from the image", f)
		}
	}
	// The binary as extracted from the image runs.
	extracted := filepath.Join(dir, "extracted")
	if err := os.WriteFile(extracted, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(extracted, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "cairn 9.8.7-test ") {
		t.Errorf("cairn version from the image: %v: %q", err, out)
	}

	// The same files make the same image.
	again := filepath.Join(dir, "again.tar")
	if err := WriteFile(again, spec); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(file)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same files differ")
	}
}
