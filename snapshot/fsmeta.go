package snapshot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Applying a node's metadata to a restored file. Order matters: chown
// first (it clears setuid/setgid bits), then xattrs (security.capability
// is cleared by chown too), then the mode, then the times last (everything
// before may touch ctime, but nothing after must touch mtime).

var (
	euid = os.Geteuid()
	egid = os.Getegid()
)

// unixMode converts Go's permission bits (with setuid/setgid/sticky) to
// the kernel's.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

// wantChown reports whether the owner should be set: only root may give
// files away, and a file we created already belongs to us.
func wantChown(n *Node) bool {
	return euid == 0 && (int(n.UID) != euid || int(n.GID) != egid)
}

// applyFileMeta sets owner, xattrs and mode of a regular file through its
// open descriptor (so no symlink swapped in can redirect it), then its times.
func applyFileMeta(f *os.File, n *Node) error {
	if wantChown(n) {
		if err := f.Chown(int(n.UID), int(n.GID)); err != nil {
			return err
		}
	}
	if err := setXattrs(f.Name(), n); err != nil {
		return err
	}
	if err := unix.Fchmod(int(f.Fd()), unixMode(n.Mode)); err != nil {
		return &os.PathError{Op: "chmod", Path: f.Name(), Err: err}
	}
	return setTimes(f.Name(), n)
}

// applyPathMeta sets metadata by path, never following a final symlink.
// Used for directories, symlinks and special files.
func applyPathMeta(p string, n *Node) error {
	if wantChown(n) {
		if err := os.Lchown(p, int(n.UID), int(n.GID)); err != nil {
			return err
		}
	}
	if err := setXattrs(p, n); err != nil {
		return err
	}
	if n.Type != NodeSymlink {
		// fchmodat cannot refuse symlinks on older kernels; p was created by
		// us as a non-symlink just before, so a plain chmod is the best we have.
		if err := unix.Fchmodat(unix.AT_FDCWD, p, unixMode(n.Mode), 0); err != nil {
			return &os.PathError{Op: "chmod", Path: p, Err: err}
		}
	}
	return setTimes(p, n)
}

// setTimes sets atime and mtime of p itself (a symlink's own times, not its
// target's). A zero time in the node is left alone.
func setTimes(p string, n *Node) error {
	ts := []unix.Timespec{timespec(n.AccessTime.IsZero(), n.AccessTime.UnixNano()),
		timespec(n.ModTime.IsZero(), n.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: p, Err: err}
	}
	return nil
}

func timespec(zero bool, ns int64) unix.Timespec {
	if zero {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(ns)
}

// setXattrs restores extended attributes; a file system without xattr
// support is not an error worth failing the file for.
func setXattrs(p string, n *Node) error {
	for _, a := range n.ExtendedAttributes {
		err := unix.Lsetxattr(p, a.Name, a.Value, 0)
		if err == nil || errors.Is(err, unix.ENOTSUP) {
			continue
		}
		return &os.PathError{Op: "setxattr " + a.Name, Path: p, Err: err}
	}
	return nil
}

// createSymlink makes a symlink, replacing whatever is at p.
func createSymlink(p string, n *Node) error {
	err := os.Symlink(n.LinkTarget, p)
	if errors.Is(err, fs.ErrExist) {
		if err = removeExisting(p); err == nil {
			err = os.Symlink(n.LinkTarget, p)
		}
	}
	return err
}

// createSpecial makes a fifo or device node, replacing whatever is at p.
// Device nodes need root (mknod fails with EPERM otherwise).
func createSpecial(p string, n *Node) error {
	var typ uint32
	switch n.Type {
	case NodeFifo:
		typ = unix.S_IFIFO
	case NodeDev:
		typ = unix.S_IFBLK
	case NodeCharDev:
		typ = unix.S_IFCHR
	default:
		return fmt.Errorf("cannot create a %s", n.Type)
	}
	mk := func() error {
		// mknod mode 0600 until applyPathMeta sets the real one.
		if err := unix.Mknod(p, typ|0o600, int(n.Device)); err != nil {
			return &os.PathError{Op: "mknod", Path: p, Err: err}
		}
		return nil
	}
	err := mk()
	if errors.Is(err, fs.ErrExist) {
		if err = removeExisting(p); err == nil {
			err = mk()
		}
	}
	return err
}

// createDir makes directory p, keeping an existing directory (restores
// merge into existing trees) but replacing anything else, never following
// a symlink found at p. It reports whether p existed as a directory.
func createDir(p string) (existed bool, err error) {
	// 0700 while restoring: we need to write into it even if its final mode
	// forbids that; the real mode is set after all children.
	err = os.Mkdir(p, 0o700)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return false, err
	}
	fi, lerr := os.Lstat(p)
	if lerr != nil {
		return false, lerr
	}
	if fi.IsDir() {
		return true, nil
	}
	if err := removeExisting(p); err != nil {
		return false, err
	}
	return false, os.Mkdir(p, 0o700)
}

// createFile creates a new regular file at p, replacing whatever was there.
// O_EXCL never follows a symlink and never writes into another hard link
// of an existing file.
func createFile(p string) (*os.File, error) {
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL | syscall.O_CLOEXEC
	f, err := os.OpenFile(p, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		if err = removeExisting(p); err == nil {
			f, err = os.OpenFile(p, flags, 0o600)
		}
	}
	return f, err
}

// openForWrite opens a file created by createFile for more writes.
func openForWrite(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
}

// removeExisting removes p so that a node of another kind can take its
// place; a directory in the way is removed with its contents, as restoring
// over it demands.
func removeExisting(p string) error {
	err := os.Remove(p)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	fi, lerr := os.Lstat(p)
	if lerr == nil && fi.IsDir() {
		return os.RemoveAll(p)
	}
	return fmt.Errorf("replace existing %s: %w", p, err)
}
