package repo

import (
	"context"
	"errors"
	"io"
)

// FileType is a kind of file in the repository; it picks the directory.
type FileType uint8

const (
	ConfigFile FileType = iota
	KeyFile
	LockFile
	SnapshotFile
	IndexFile
	PackFile
)

func (t FileType) String() string {
	switch t {
	case ConfigFile:
		return "config"
	case KeyFile:
		return "key"
	case LockFile:
		return "lock"
	case SnapshotFile:
		return "snapshot"
	case IndexFile:
		return "index"
	case PackFile:
		return "data"
	}
	return "invalid"
}

// Handle names one file in a backend. Name is empty for ConfigFile.
type Handle struct {
	Type FileType
	Name string
}

func (h Handle) String() string {
	if h.Type == ConfigFile {
		return "config"
	}
	return h.Type.String() + "/" + h.Name
}

// FileInfo describes a stored file.
type FileInfo struct {
	Name string
	Size int64
}

// ErrNotExist is returned (possibly wrapped) by backends for missing files.
var ErrNotExist = errors.New("file does not exist")

// ErrReadOnly is returned by every write on a repository opened read-only.
var ErrReadOnly = errors.New("repository is read-only")

// Backend stores repository files. Implementations must be safe for
// concurrent use. Save must be atomic: a reader sees the whole file or none.
type Backend interface {
	// Location is shown to users (a path or URL without credentials).
	Location() string
	// Save stores size bytes from rd under h. rd implements io.Seeker when the
	// backend may need to retry.
	Save(ctx context.Context, h Handle, rd io.Reader, size int64) error
	// Load returns length bytes of h starting at offset; length 0 means to
	// the end. The caller must close the reader.
	Load(ctx context.Context, h Handle, length int, offset int64) (io.ReadCloser, error)
	Stat(ctx context.Context, h Handle) (FileInfo, error)
	// List calls fn for every file of type t, in no particular order.
	List(ctx context.Context, t FileType, fn func(FileInfo) error) error
	Remove(ctx context.Context, h Handle) error
	Close() error
}

// IsNotExist reports whether err says that a file is missing.
func IsNotExist(err error) bool { return errors.Is(err, ErrNotExist) }

// LoadAll reads a whole file.
func LoadAll(ctx context.Context, be Backend, h Handle) ([]byte, error) {
	rd, err := be.Load(ctx, h, 0, 0)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}
