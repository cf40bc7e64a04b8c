// Package image builds single-layer container images from files on disk,
// without a container engine: the cairn image (make image) and the test
// node's pause, busybox and file-server images are each one static binary
// or a few files. The result is a `docker save`-style tarball that
// `ctr images import` and `docker load` accept.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// File is one entry of the image's only layer.
type File struct {
	Path    string // absolute path in the image
	Source  string // a file on disk to copy; "" = Data
	Data    []byte
	Mode    int64  // permission bits (and 01000, sticky); 0 = 0755 for Source and Dir, 0644 for Data
	Symlink string // if set, Path is a symlink to it
	Dir     bool   // Path is a directory
}

// Spec says what the image is.
type Spec struct {
	Ref        string // e.g. ghcr.io/cairn-backup/cairn:v0.1.0
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
	User       string // e.g. "65532" or "0"
	WorkingDir string
	Labels     map[string]string
}

// epoch keeps builds reproducible: the same files make the same digest.
var epoch = time.Unix(0, 0).UTC()

// Write builds the image and writes it as a tarball to w.
func Write(w io.Writer, s Spec) error {
	ref, err := name.NewTag(s.Ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", s.Ref, err)
	}
	layerTar, err := layerBytes(s.Files)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return fmt.Errorf("image layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("image layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", "amd64", v1.Time{Time: epoch}
	cf.Config.Entrypoint, cf.Config.Cmd, cf.Config.Env = s.Entrypoint, s.Cmd, s.Env
	cf.Config.User, cf.Config.WorkingDir, cf.Config.Labels = s.User, s.WorkingDir, s.Labels
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if err := tarball.Write(ref, img, w); err != nil {
		return fmt.Errorf("write image %s: %w", s.Ref, err)
	}
	return nil
}

// WriteFile is Write into a file, atomically.
func WriteFile(file string, s Spec) error {
	tmp, err := os.CreateTemp(path.Dir(file), ".image-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := Write(tmp, s); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// layerBytes makes the layer's tar: parent directories first, entries in
// path order, owned by root, with fixed times.
func layerBytes(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var mkdirs func(p string) error
	mkdirs = func(p string) error {
		if p == "/" || p == "." || dirs[p] {
			return nil
		}
		if err := mkdirs(path.Dir(p)); err != nil {
			return err
		}
		dirs[p] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(p, "/") + "/", Mode: 0o755, ModTime: epoch})
	}
	for _, f := range sorted {
		p := path.Clean("/" + f.Path)
		if err := mkdirs(path.Dir(p)); err != nil {
			return nil, err
		}
		rel := strings.TrimPrefix(p, "/")
		switch {
		case f.Dir:
			if err := mkdirs(path.Dir(p)); err != nil {
				return nil, err
			}
			if dirs[p] {
				continue // already made as a parent, with the default mode
			}
			dirs[p] = true
			mode := f.Mode
			if mode == 0 {
				mode = 0o755
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: mode, ModTime: epoch}); err != nil {
				return nil, err
			}
		case f.Symlink != "":
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: rel, Linkname: f.Symlink, Mode: 0o777, ModTime: epoch}); err != nil {
				return nil, err
			}
		default:
			data, mode := f.Data, f.Mode
			if f.Source != "" {
				var err error
				if data, err = os.ReadFile(f.Source); err != nil {
					return nil, fmt.Errorf("image file %s: %w", p, err)
				}
				if mode == 0 {
					mode = 0o755
				}
			}
			if mode == 0 {
				mode = 0o644
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Size: int64(len(data)), Mode: mode, ModTime: epoch}); err != nil {
				return nil, err
			}
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
