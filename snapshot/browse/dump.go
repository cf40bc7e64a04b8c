package browse

import (
	"archive/tar"
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sys/unix"
)

// Archive formats for Dump.
const (
	ArchiveTar = "tar"
	ArchiveZip = "zip"
)

// Dump writes the node at path p of snapshot tree root to w: a file's
// content as is; anything else (a directory, symlink, device) as an
// archive in format (ArchiveTar or ArchiveZip). Archive entry names are
// relative to the parent of p, as `tar c -C parent name` would write them;
// dumping "/" writes the root's entries at the top.
//
// Whatever names a tree holds, no entry name is absolute or has an empty,
// "." or ".." component, and no name occurs twice (extracting the archive
// stays inside the directory it is extracted in; symlink targets are only
// data). Trees that cannot be loaded and entries with unusable names go to
// damaged and are left out; with a nil damaged the first one ends the dump
// with an error.
func Dump(ctx context.Context, loader *snapshot.TreeLoader, cache *BlobCache, root repo.ID, p, format string, w io.Writer, damaged snapshot.DamagedFunc) error {
	if format != ArchiveTar && format != ArchiveZip {
		return fmt.Errorf("dump: unknown archive format %q (use tar or zip)", format)
	}
	p = path.Clean("/" + p)
	node, err := snapshot.FindNode(ctx, loader, root, p)
	if err != nil {
		return err
	}
	if node.Type == snapshot.NodeFile {
		return DumpFile(ctx, loader.Repository(), cache, node, w)
	}
	if damaged == nil {
		damaged = func(p string, err error) error { return fmt.Errorf("dump %s: %w", p, err) }
	}
	var aw archiveWriter
	if format == ArchiveTar {
		aw = &tarDumper{ctx: ctx, r: loader.Repository(), cache: cache, w: tar.NewWriter(w)}
	} else {
		aw = &zipDumper{ctx: ctx, r: loader.Repository(), cache: cache, w: zip.NewWriter(w)}
	}
	add := func(name, snapPath string, n *snapshot.Node) error {
		if msg := archiveNameProblem(name, format); msg != "" {
			if err := damaged(snapPath, fmt.Errorf("not archived: %w: %s", snapshot.ErrBadName, msg)); err != nil {
				return err
			}
			return snapshot.ErrSkipDir // nor anything below it
		}
		return aw.add(name, n)
	}
	prefix, skip := "", false
	if p != "/" {
		prefix = node.Name
		if err := add(prefix, p, node); errors.Is(err, snapshot.ErrSkipDir) {
			skip = true
		} else if err != nil {
			return err
		}
	}
	if node.Type == snapshot.NodeDir && !skip {
		if node.Subtree == nil {
			return fmt.Errorf("dump %s: directory node has no subtree", p)
		}
		// rel is "/"-joined from checked names; it is not cleaned, so that
		// nothing in a name can vanish into a shorter path unchecked.
		err := snapshot.WalkDamaged(ctx, loader, *node.Subtree, func(rel string, n *snapshot.Node) error {
			return add(strings.TrimPrefix(prefix+rel, "/"), path.Join(p, rel), n)
		}, func(rel string, err error) error {
			return damaged(path.Join(p, rel), err)
		})
		if err != nil {
			return err
		}
	}
	if err := aw.close(); err != nil {
		return fmt.Errorf("dump %s: finish %s archive: %w", p, format, err)
	}
	return nil
}

// archiveNameProblem says why name cannot be an archive entry name, or ""
// if it can: it must be relative, with no empty, "." or ".." component and
// no NUL. In zip, where extractors on Windows read a backslash as a separator,
// it must not hold one either.
func archiveNameProblem(name, format string) string {
	switch {
	case name == "":
		return "empty name"
	case strings.HasPrefix(name, "/"):
		return "absolute path"
	case strings.ContainsRune(name, 0):
		return "holds NUL"
	case format == ArchiveZip && strings.ContainsRune(name, '\\'):
		return "holds a backslash, a path separator for zip extractors on Windows"
	}
	for _, c := range strings.Split(name, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Sprintf("component %q", c)
		}
	}
	return ""
}

// DumpFile writes a file node's content to w.
func DumpFile(ctx context.Context, r *repo.Repository, cache *BlobCache, node *snapshot.Node, w io.Writer) error {
	fr, err := NewFileReader(ctx, r, cache, node)
	if err != nil {
		return err
	}
	if _, err := fr.WriteTo(w); err != nil {
		return fmt.Errorf("dump %s: %w", node.Name, err)
	}
	return nil
}

type archiveWriter interface {
	add(name string, n *snapshot.Node) error
	close() error
}

type tarDumper struct {
	ctx   context.Context
	r     *repo.Repository
	cache *BlobCache
	w     *tar.Writer
}

func (d *tarDumper) add(name string, n *snapshot.Node) error {
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(UnixMode(n.Mode)),
		Uid:     int(n.UID),
		Gid:     int(n.GID),
		Uname:   n.User,
		Gname:   n.Group,
		ModTime: n.ModTime,
		// PAX keeps sub-second mtimes, long and non-ASCII names.
		Format: tar.FormatPAX,
	}
	switch n.Type {
	case snapshot.NodeFile:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = int64(n.Size)
	case snapshot.NodeDir:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case snapshot.NodeSymlink:
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = n.LinkTarget
	case snapshot.NodeCharDev, snapshot.NodeDev:
		hdr.Typeflag = tar.TypeChar
		if n.Type == snapshot.NodeDev {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(n.Device))
		hdr.Devminor = int64(unix.Minor(n.Device))
	case snapshot.NodeFifo:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets and irregular files cannot be archived
	}
	for _, xa := range n.ExtendedAttributes {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+xa.Name] = string(xa.Value)
	}
	if n.Type == snapshot.NodeFile {
		fr, err := NewFileReader(d.ctx, d.r, d.cache, n)
		if err != nil {
			return fmt.Errorf("dump %s: %w", name, err)
		}
		// The header must carry the size that is written.
		hdr.Size = fr.Size()
		if err := d.w.WriteHeader(hdr); err != nil {
			return fmt.Errorf("dump %s: %w", name, err)
		}
		if _, err := fr.WriteTo(d.w); err != nil {
			return fmt.Errorf("dump %s: %w", name, err)
		}
		return nil
	}
	if err := d.w.WriteHeader(hdr); err != nil {
		return fmt.Errorf("dump %s: %w", name, err)
	}
	return nil
}

func (d *tarDumper) close() error { return d.w.Close() }

type zipDumper struct {
	ctx   context.Context
	r     *repo.Repository
	cache *BlobCache
	w     *zip.Writer
}

func (d *zipDumper) add(name string, n *snapshot.Node) error {
	fh := &zip.FileHeader{Name: name, Modified: n.ModTime, Method: zip.Store}
	switch n.Type {
	case snapshot.NodeFile:
		fh.Method = zip.Deflate
	case snapshot.NodeDir:
		fh.Name += "/"
	case snapshot.NodeSymlink:
	default:
		return nil // zip has no devices, fifos or sockets
	}
	fh.SetMode(fileMode(n))
	w, err := d.w.CreateHeader(fh)
	if err != nil {
		return fmt.Errorf("dump %s: %w", name, err)
	}
	switch n.Type {
	case snapshot.NodeFile:
		fr, err := NewFileReader(d.ctx, d.r, d.cache, n)
		if err != nil {
			return fmt.Errorf("dump %s: %w", name, err)
		}
		if _, err := fr.WriteTo(w); err != nil {
			return fmt.Errorf("dump %s: %w", name, err)
		}
	case snapshot.NodeSymlink:
		// Info-ZIP stores a symlink's target as its content.
		if _, err := io.WriteString(w, n.LinkTarget); err != nil {
			return fmt.Errorf("dump %s: %w", name, err)
		}
	}
	return nil
}

func (d *zipDumper) close() error { return d.w.Close() }

// fileMode is n's mode with the type bits that match n.Type (restic
// records them, but foreign trees may not).
func fileMode(n *snapshot.Node) os.FileMode {
	m := n.Mode &^ os.ModeType
	switch n.Type {
	case snapshot.NodeDir:
		m |= os.ModeDir
	case snapshot.NodeSymlink:
		m |= os.ModeSymlink
	case snapshot.NodeDev:
		m |= os.ModeDevice
	case snapshot.NodeCharDev:
		m |= os.ModeDevice | os.ModeCharDevice
	case snapshot.NodeFifo:
		m |= os.ModeNamedPipe
	case snapshot.NodeSocket:
		m |= os.ModeSocket
	}
	return m
}
