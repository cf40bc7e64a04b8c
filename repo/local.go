package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// Local is a backend in a local directory, in restic's default layout.
type Local struct {
	dir string

	tmpOnce sync.Once
	tmp     string // this process's directory under tmp/
}

var _ Backend = (*Local)(nil)

var dirNames = map[FileType]string{
	KeyFile: "keys", LockFile: "locks", SnapshotFile: "snapshots",
	IndexFile: "index", PackFile: "data",
}

// OpenLocal opens an existing local repository directory.
func OpenLocal(dir string) (*Local, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("repository %s does not exist: %w (create it with `cairn init`)", dir, ErrNotExist)
		}
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("repository %s is not a directory", dir)
	}
	removeDeadTemp(filepath.Join(dir, "tmp"))
	return &Local{dir: dir}, nil
}

// CreateLocal makes the directory layout of a new repository. It fails when
// a config file already exists there.
func CreateLocal(dir string) (*Local, error) {
	if _, err := os.Stat(filepath.Join(dir, "config")); err == nil {
		return nil, fmt.Errorf("repository %s already exists", dir)
	}
	dirs := []string{dir, filepath.Join(dir, "tmp")}
	for _, d := range dirNames {
		dirs = append(dirs, filepath.Join(dir, d))
	}
	for i := 0; i < 256; i++ {
		dirs = append(dirs, filepath.Join(dir, "data", fmt.Sprintf("%02x", i)))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create repository %s: %w", dir, err)
		}
	}
	return &Local{dir: dir}, nil
}

func (l *Local) Location() string { return l.dir }

func (l *Local) path(h Handle) string {
	switch h.Type {
	case ConfigFile:
		return filepath.Join(l.dir, "config")
	case PackFile:
		if len(h.Name) >= 2 {
			return filepath.Join(l.dir, "data", h.Name[:2], h.Name)
		}
	}
	return filepath.Join(l.dir, dirNames[h.Type], h.Name)
}

func wrapNotExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrNotExist, err)
	}
	return err
}

// Save writes to a temp file under tmp/, syncs it and renames it into place.
func (l *Local) Save(ctx context.Context, h Handle, rd io.Reader, size int64) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	final := l.path(h)
	tmpDir, err := l.ownTempDir()
	if err != nil {
		return fmt.Errorf("save %v: %w", h, diskFull(err))
	}
	f, err := os.CreateTemp(tmpDir, "save-*")
	if err != nil {
		return fmt.Errorf("save %v: %w", h, diskFull(err))
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	n, err := io.Copy(f, rd)
	if err != nil {
		return fmt.Errorf("save %v: %w", h, diskFull(err))
	}
	if n != size {
		return fmt.Errorf("save %v: wrote %d bytes, expected %d", h, n, size)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("save %v: sync: %w", h, diskFull(err))
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("save %v: %w", h, diskFull(err))
	}
	if err = os.Rename(f.Name(), final); errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(final), 0o700); err == nil {
			err = os.Rename(f.Name(), final)
		}
	}
	if err != nil {
		return fmt.Errorf("save %v: %w", h, err)
	}
	_ = os.Chmod(final, 0o400) // stored files never change
	return syncDir(filepath.Dir(final))
}

func diskFull(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w (the disk is full: cairn removes the partial temp file, but packs it stored before this stay unused in the repository until `cairn prune`; free some space and run the command again)", err)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

type sectionReadCloser struct {
	io.Reader
	f *os.File
}

func (s sectionReadCloser) Close() error { return s.f.Close() }

func (l *Local) Load(ctx context.Context, h Handle, length int, offset int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if length < 0 || offset < 0 {
		return nil, fmt.Errorf("load %v: invalid range %d+%d", h, offset, length)
	}
	f, err := os.Open(l.path(h))
	if err != nil {
		return nil, fmt.Errorf("load %v: %w", h, wrapNotExist(err))
	}
	if length == 0 {
		if offset > 0 {
			if _, err := f.Seek(offset, io.SeekStart); err != nil {
				f.Close()
				return nil, fmt.Errorf("load %v: %w", h, err)
			}
		}
		return f, nil
	}
	return sectionReadCloser{io.NewSectionReader(f, offset, int64(length)), f}, nil
}

func (l *Local) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	fi, err := os.Stat(l.path(h))
	if err != nil {
		return FileInfo{}, fmt.Errorf("stat %v: %w", h, wrapNotExist(err))
	}
	return FileInfo{Name: h.Name, Size: fi.Size()}, nil
}

func (l *Local) List(ctx context.Context, t FileType, fn func(FileInfo) error) error {
	if t == ConfigFile {
		return fmt.Errorf("list: config is not a directory")
	}
	dirs := []string{filepath.Join(l.dir, dirNames[t])}
	if t == PackFile {
		sub, err := os.ReadDir(dirs[0])
		if err != nil {
			return fmt.Errorf("list %v: %w", t, wrapNotExist(err))
		}
		dirs = dirs[:0]
		for _, e := range sub {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join(l.dir, "data", e.Name()))
			}
		}
	}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("list %v: %w", t, err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			if !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed while listing
				}
				return fmt.Errorf("list %v: %w", t, err)
			}
			if err := fn(FileInfo{Name: e.Name(), Size: fi.Size()}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Local) Remove(ctx context.Context, h Handle) error {
	if err := os.Remove(l.path(h)); err != nil {
		return fmt.Errorf("remove %v: %w", h, wrapNotExist(err))
	}
	return nil
}

func (l *Local) Close() error { return nil }

// TempDir is where pack temp files go: on the repository's filesystem, so
// SaveFile can rename them into place, in a directory of this process's
// own (see tempOwner). If it cannot be made, packs are written to the
// system's temp directory and copied.
func (l *Local) TempDir() string {
	d, err := l.ownTempDir()
	if err != nil {
		return os.TempDir()
	}
	return d
}

func (l *Local) ownTempDir() (string, error) {
	l.tmpOnce.Do(func() { l.tmp = filepath.Join(l.dir, "tmp", tempOwner()) })
	// Made on every use: repositories made by other tools may lack tmp/.
	return l.tmp, os.MkdirAll(l.tmp, 0o700)
}

// SaveFile moves a complete, synced file into place. It falls back to a
// copy when the file is on another filesystem.
func (l *Local) SaveFile(ctx context.Context, h Handle, path string) error {
	final := l.path(h)
	err := os.Rename(path, final)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(final), 0o700); err == nil {
			err = os.Rename(path, final)
		}
	}
	if errors.Is(err, syscall.EXDEV) {
		f, oerr := os.Open(path)
		if oerr != nil {
			return fmt.Errorf("save %v: %w", h, oerr)
		}
		defer f.Close()
		fi, _ := f.Stat()
		return l.Save(ctx, h, f, fi.Size())
	}
	if err != nil {
		return fmt.Errorf("save %v: %w", h, err)
	}
	_ = os.Chmod(final, 0o400)
	return syncDir(filepath.Dir(final))
}
