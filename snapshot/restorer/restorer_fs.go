package restorer

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The restorer reaches everything it creates or changes through directory
// descriptors opened without following symlinks, so neither a crafted
// snapshot nor a target changed underneath (a directory swapped for a
// symlink mid-restore) can make it write outside the target. Files are
// opened with openat2 relative to the target root, refusing every symlink
// on the way; without openat2 (kernels before 5.6, or seccomp filters) and
// for paths too long for one call, directories are walked one component
// at a time with O_NOFOLLOW|O_DIRECTORY from the nearest open ancestor.

const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// maxOpenDirs bounds the directory descriptors the cache keeps open, so
// deep or wide trees cannot exhaust the process's descriptors. Depth-first
// planning mostly needs the current directory and its parent.
const maxOpenDirs = 128

// maxResolvePath is the longest path handed to openat2 (PATH_MAX less the
// terminating NUL); deeper entries are reached through their directory.
const maxResolvePath = unix.PathMax - 1

// forceDirWalk makes restores use the component walk even where openat2
// works, so tests cover the fallback.
var forceDirWalk = false

// targetFS is the restore target opened as a directory, with a bounded
// LRU of open descriptors of directories below it. Safe for concurrent use.
type targetFS struct {
	path    string // as given, for messages
	root    int
	openat2 bool
	// exactModes: a file created in a fresh directory gets exactly its
	// create mode less umask (see exactCreateModes).
	exactModes bool
	umask      uint32

	mu  sync.Mutex
	lru list.List // of *dirState holding an open fd; front = most recent
}

func openTargetFS(target string) (*targetFS, error) {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return nil, fmt.Errorf("restore: create target: %w", err)
	}
	// The target path itself is the user's: following symlinks in it is
	// what they asked for. Nothing below it is followed.
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("restore: open target %s: %w", target, err)
	}
	t := &targetFS{path: target, root: fd}
	t.umask, t.exactModes = exactCreateModes(fd)
	if !forceDirWalk {
		probe, err := unix.Openat2(fd, ".", &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolveBeneath})
		if err == nil {
			unix.Close(probe)
			t.openat2 = true
		}
	}
	return t, nil
}

// close releases every descriptor.
func (t *targetFS) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for e := t.lru.Front(); e != nil; e = e.Next() {
		d := e.Value.(*dirState)
		unix.Close(d.fd)
		d.elem, d.fd = nil, -1
	}
	t.lru.Init()
	unix.Close(t.root)
}

// display turns a path relative to the target into one for messages.
func (t *targetFS) display(rel string) string { return filepath.Join(t.path, rel) }

// acquire returns an open descriptor of directory d, which stays valid
// until release(d).
func (t *targetFS) acquire(d *dirState) (int, error) {
	if d.parent == nil {
		return t.root, nil
	}
	t.mu.Lock()
	if d.elem != nil {
		d.refs++
		t.lru.MoveToFront(d.elem)
		t.mu.Unlock()
		return d.fd, nil
	}
	t.mu.Unlock()
	fd, err := t.openDir(d)
	if err != nil {
		return -1, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if d.elem != nil { // opened meanwhile by another worker
		unix.Close(fd)
	} else {
		d.fd = fd
		d.elem = t.lru.PushFront(d)
		t.evict()
	}
	d.refs++
	return d.fd, nil
}

func (t *targetFS) release(d *dirState) {
	if d.parent == nil {
		return
	}
	t.mu.Lock()
	d.refs--
	t.mu.Unlock()
}

// evict closes least recently used descriptors nobody holds. mu held.
func (t *targetFS) evict() {
	for e := t.lru.Back(); e != nil && t.lru.Len() > maxOpenDirs; {
		prev := e.Prev()
		if d := e.Value.(*dirState); d.refs == 0 {
			t.lru.Remove(e)
			unix.Close(d.fd)
			d.elem, d.fd = nil, -1
		}
		e = prev
	}
}

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// openDir opens d without following any symlink below the target.
func (t *targetFS) openDir(d *dirState) (int, error) {
	if t.openat2 && len(d.rel) <= maxResolvePath {
		fd, err := unix.Openat2(t.root, d.rel, &unix.OpenHow{Flags: dirFlags, Resolve: resolveBeneath})
		if err != nil {
			return -1, &os.PathError{Op: "open directory", Path: t.display(d.rel), Err: noFollowErr(err)}
		}
		return fd, nil
	}
	pfd, err := t.acquire(d.parent)
	if err != nil {
		return -1, err
	}
	defer t.release(d.parent)
	fd, err := unix.Openat(pfd, d.name, dirFlags, 0)
	if err != nil {
		// O_DIRECTORY on a symlink says ENOTDIR; say what is in the way.
		var st unix.Stat_t
		if errors.Is(err, unix.ENOTDIR) && unix.Fstatat(pfd, d.name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			err = errSymlinkInPath
		}
		return -1, &os.PathError{Op: "open directory", Path: t.display(d.rel), Err: noFollowErr(err)}
	}
	return fd, nil
}

// exactCreateModes reports the process's umask and whether files created in
// directories this restore makes below root get exactly their create mode
// less the umask: not when root has a default ACL (inherited by those
// directories, it replaces the umask) or the setgid bit (inherited too),
// nor when the umask cannot be read without changing it (Linux before 4.7).
func exactCreateModes(root int) (umask uint32, ok bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, found := strings.CutPrefix(line, "Umask:"); found {
			u, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				return 0, false
			}
			umask, ok = uint32(u), true
		}
	}
	var st unix.Stat_t
	if !ok || unix.Fstat(root, &st) != nil || st.Mode&unix.S_ISGID != 0 {
		return 0, false
	}
	_, err = unix.Fgetxattr(root, "system.posix_acl_default", nil)
	if !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
		return 0, false // a default ACL, or unknown
	}
	return umask, true
}

// openFd opens the entry name of directory d (rel is its path below the
// target) with flags, never following a symlink anywhere below the target.
// It returns the bare descriptor: no *os.File to set up and finalize, as
// restores open one per file.
func (t *targetFS) openFd(d *dirState, name, rel string, flags int, mode uint32) (int, error) {
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	var fd int
	var err error
	if t.openat2 && len(rel) <= maxResolvePath {
		fd, err = unix.Openat2(t.root, rel, &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: resolveBeneath})
	} else {
		var pfd int
		if pfd, err = t.acquire(d); err != nil {
			return -1, err
		}
		fd, err = unix.Openat(pfd, name, flags, mode)
		t.release(d)
	}
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: t.display(rel), Err: noFollowErr(err)}
	}
	return fd, nil
}

// errSymlinkInPath explains ELOOP from a no-follow open: the usual cause is
// a symlink where the snapshot has a directory (or file).
var errSymlinkInPath = errors.New("a symlink is in the way (not followed)")

func noFollowErr(err error) error {
	if errors.Is(err, unix.ELOOP) {
		return errSymlinkInPath
	}
	if errors.Is(err, unix.EXDEV) {
		return errors.New("path leaves the restore target (not followed)")
	}
	return err
}

// removeAt removes the entry name of directory fd, with its contents if it
// is a directory, never following a symlink.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	return removeAllAt(dirfd, name)
}

func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, dirFlags, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	names, err := f.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeAt(fd, n); err != nil {
				break
			}
		}
	}
	f.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// createFile creates fj's file, replacing whatever is at its name. O_EXCL
// never follows a symlink and never writes into another hard link of an
// existing file. exact reports that it was created with its final mode, so
// no chmod is needed (see exactMode).
func (rs *restorer) createFile(fj *fileJob) (fd int, exact bool, err error) {
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | rs.directFlag(fj)
	mode, exact := rs.exactMode(fj)
	fd, err = rs.fs.openFd(fj.dir, fj.node.Name, fj.rel, flags, mode)
	if errors.Is(err, unix.EINVAL) && flags&unix.O_DIRECT != 0 {
		// No O_DIRECT here (the file may have been created all the same:
		// the EEXIST case below replaces it).
		rs.noDirect.Store(true)
		flags &^= unix.O_DIRECT
		fd, err = rs.fs.openFd(fj.dir, fj.node.Name, fj.rel, flags, mode)
	}
	if errors.Is(err, unix.EEXIST) {
		var pfd int
		if pfd, err = rs.fs.acquire(fj.dir); err == nil {
			err = removeAt(pfd, fj.node.Name)
			rs.fs.release(fj.dir)
		}
		if err == nil {
			fd, err = rs.fs.openFd(fj.dir, fj.node.Name, fj.rel, flags, mode)
		}
	}
	if err != nil {
		return -1, false, err
	}
	if rs.opts.Verify || fj.needsIdentity() {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, false, &os.PathError{Op: "stat", Path: rs.fs.display(fj.rel), Err: err}
		}
		fj.ino, fj.dev = st.Ino, st.Dev
	}
	fj.created = true
	return fd, exact, nil
}

// exactMode returns the mode to create fj's file with, and whether that is
// provably its final mode, so the chmod after writing can be skipped: the
// directory is fresh (no default ACL, no setgid, see exactCreateModes), the
// mode has no bits the umask clears and no setuid/setgid/sticky bits (a
// chown would clear those), no chown or xattrs follow (an ACL xattr sets
// the mode), and the file is written through this one descriptor (a
// reopen needs the owner's write permission; verify needs read). Otherwise
// it is created 0600 and its mode is set after its content.
func (rs *restorer) exactMode(fj *fileJob) (uint32, bool) {
	n := fj.node
	m := unixMode(n.Mode)
	if !fj.dir.fresh || m&^0o777 != 0 || m&rs.fs.umask != 0 || wantChown(n, true) || len(n.ExtendedAttributes) > 0 ||
		fj.needsIdentity() || (rs.opts.Verify && euid != 0 && m&0o400 == 0) {
		return 0o600, false
	}
	return m, true
}

// errReplaced: the name of a file being restored no longer leads to the
// file created for it.
var errReplaced = errors.New("replaced by something else during the restore")

// reopen opens fj's file again (for more writes or for verify), refusing
// anything but the inode created for it.
func (rs *restorer) reopen(fj *fileJob, flags int) (int, error) {
	fd, err := rs.fs.openFd(fj.dir, fj.node.Name, fj.rel, flags, 0)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "stat", Path: rs.fs.display(fj.rel), Err: err}
	}
	if st.Ino != fj.ino || st.Dev != fj.dev {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", rs.fs.display(fj.rel), errReplaced)
	}
	return fd, nil
}

// link makes l a hard link of its first name, both reached through their
// directories' descriptors (linkat does not follow the source), and checks
// that the result is the inode restored for the first name.
func (rs *restorer) link(l hardLink) error {
	shown := rs.fs.display(l.dir.join(l.name))
	src, err := rs.fs.acquire(l.first.dir)
	if err != nil {
		return err
	}
	defer rs.fs.release(l.first.dir)
	dst, err := rs.fs.acquire(l.dir)
	if err != nil {
		return err
	}
	defer rs.fs.release(l.dir)
	err = replaceAt(dst, l.name, func() error { return unix.Linkat(src, l.first.node.Name, dst, l.name, 0) })
	if err != nil {
		return &os.PathError{Op: "link", Path: shown, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dst, l.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "stat", Path: shown, Err: err}
	}
	if st.Ino != l.first.ino || st.Dev != l.first.dev {
		unix.Unlinkat(dst, l.name, 0)
		return fmt.Errorf("hard link %s: its first name %s was %w", shown, rs.fs.display(l.first.rel), errReplaced)
	}
	return nil
}

// dropCache closes every cached descriptor nobody holds (tests use it to
// make the next access walk from the root).
func (t *targetFS) dropCache() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for e := t.lru.Front(); e != nil; {
		next := e.Next()
		if d := e.Value.(*dirState); d.refs == 0 {
			t.lru.Remove(e)
			unix.Close(d.fd)
			d.elem, d.fd = nil, -1
		}
		e = next
	}
}
