package restorer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"unsafe"

	"github.com/cairn-backup/cairn/snapshot"
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
// files away, and an entry we created in a fresh directory (owned says so)
// already belongs to us. Elsewhere it may not: a setgid directory gives
// new entries its group, and an existing one keeps its owner.
func wantChown(n *snapshot.Node, owned bool) bool {
	return euid == 0 && (!owned || int(n.UID) != euid || int(n.GID) != egid)
}

// applyFdMeta sets owner, xattrs, mode (with chmod set) and times of an open
// regular file or directory through its descriptor, so no symlink swapped in
// can redirect it. name is for messages; owned: see wantChown.
func applyFdMeta(fd int, name string, n *snapshot.Node, chmod, owned bool) error {
	if wantChown(n, owned) {
		if err := unix.Fchown(fd, int(n.UID), int(n.GID)); err != nil {
			return &os.PathError{Op: "chown", Path: name, Err: err}
		}
	}
	for _, a := range n.ExtendedAttributes {
		if err := unix.Fsetxattr(fd, a.Name, a.Value, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return &os.PathError{Op: "setxattr " + a.Name, Path: name, Err: err}
		}
	}
	if chmod {
		if err := unix.Fchmod(fd, unixMode(n.Mode)); err != nil {
			return &os.PathError{Op: "chmod", Path: name, Err: err}
		}
	}
	ts := nodeTimes(n)
	// futimens: utimensat with a NULL path acts on fd itself.
	if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
		return &os.PathError{Op: "utimensat", Path: name, Err: e}
	}
	return nil
}

// applyAtMeta sets the metadata of entry name of directory dirfd without
// following it: for symlinks (their own owner and times) and special files,
// which cannot be opened for writing. shown is for messages.
func applyAtMeta(dirfd int, name, shown string, n *snapshot.Node, owned bool) error {
	if wantChown(n, owned) {
		if err := unix.Fchownat(dirfd, name, int(n.UID), int(n.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "chown", Path: shown, Err: err}
		}
	}
	if len(n.ExtendedAttributes) > 0 {
		// lsetxattr through the directory's descriptor: the magic link
		// names exactly that directory, and the last component is not
		// followed.
		p := fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, name)
		for _, a := range n.ExtendedAttributes {
			err := unix.Lsetxattr(p, a.Name, a.Value, 0)
			if err != nil && !errors.Is(err, unix.ENOTSUP) && !(n.Type == snapshot.NodeSymlink && errors.Is(err, unix.EPERM)) {
				return &os.PathError{Op: "setxattr " + a.Name, Path: shown, Err: err}
			}
		}
	}
	if n.Type != snapshot.NodeSymlink {
		if err := fchmodNoFollow(dirfd, name, unixMode(n.Mode)); err != nil {
			return &os.PathError{Op: "chmod", Path: shown, Err: err}
		}
	}
	ts := nodeTimes(n)
	if err := unix.UtimesNanoAt(dirfd, name, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: shown, Err: err}
	}
	return nil
}

// fchmodNoFollow changes the mode of a non-symlink entry. fchmodat2 (Linux
// 6.6) refuses symlinks itself; before it, the entry is opened O_PATH
// without following and changed through its magic link, which names
// exactly the opened inode.
func fchmodNoFollow(dirfd int, name string, mode uint32) error {
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return errSymlinkInPath
	}
	return unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), mode)
}

// nodeTimes returns atime and mtime for utimensat; a zero time in the node
// is left alone.
func nodeTimes(n *snapshot.Node) [2]unix.Timespec {
	return [2]unix.Timespec{timespec(n.AccessTime.IsZero(), n.AccessTime.UnixNano()),
		timespec(n.ModTime.IsZero(), n.ModTime.UnixNano())}
}

func timespec(zero bool, ns int64) unix.Timespec {
	if zero {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(ns)
}

// replaceAt runs create for entry name of dirfd; if something is in the
// way, it is removed (without following it) and create runs again.
func replaceAt(dirfd int, name string, create func() error) error {
	err := create()
	if errors.Is(err, unix.EEXIST) {
		if err = removeAt(dirfd, name); err == nil {
			err = create()
		}
	}
	return err
}

// symlinkAt makes a symlink named name in dirfd, replacing what is there.
// Its target is stored as it is: creating a link to "/etc" or "../.." is
// harmless; only following one would not be, and nothing here follows.
func symlinkAt(dirfd int, name, shown string, n *snapshot.Node) error {
	err := replaceAt(dirfd, name, func() error { return unix.Symlinkat(n.LinkTarget, dirfd, name) })
	if err != nil {
		return &os.PathError{Op: "symlink", Path: shown, Err: err}
	}
	return nil
}

// mknodAt makes a fifo or device node named name in dirfd, replacing what
// is there. Device nodes need root (mknod fails with EPERM otherwise).
func mknodAt(dirfd int, name, shown string, n *snapshot.Node) error {
	var typ uint32
	switch n.Type {
	case snapshot.NodeFifo:
		typ = unix.S_IFIFO
	case snapshot.NodeDev:
		typ = unix.S_IFBLK
	case snapshot.NodeCharDev:
		typ = unix.S_IFCHR
	default:
		return fmt.Errorf("cannot create a %s", n.Type)
	}
	// Mode 0600 until applyAtMeta sets the real one.
	err := replaceAt(dirfd, name, func() error { return unix.Mknodat(dirfd, name, typ|0o600, int(n.Device)) })
	if err != nil {
		return &os.PathError{Op: "mknod", Path: shown, Err: err}
	}
	return nil
}

// mkdirAt makes directory name in dirfd, keeping an existing directory
// (restores merge into existing trees) but replacing anything else, a
// symlink included, without following it. It reports whether a directory
// was there.
func mkdirAt(dirfd int, name, shown string) (existed bool, err error) {
	// 0700 while restoring: we need to write into it even if its final mode
	// forbids that; the real mode is set after all children.
	err = unix.Mkdirat(dirfd, name, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err = unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				existed = true
				if euid != 0 {
					// A directory left read-only by an earlier restore must
					// take new entries.
					err = fchmodNoFollow(dirfd, name, 0o700)
				}
			} else if err = removeAt(dirfd, name); err == nil {
				err = unix.Mkdirat(dirfd, name, 0o700)
			}
		}
	}
	if err != nil {
		return false, &os.PathError{Op: "mkdir", Path: shown, Err: err}
	}
	return existed, nil
}
