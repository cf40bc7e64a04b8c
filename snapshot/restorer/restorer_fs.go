package restorer

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// openFile opens the entry name of directory d (rel is its path below the
// target) with flags, never following a symlink anywhere below the target.
func (t *targetFS) openFile(d *dirState, name, rel string, flags int, mode uint32) (*os.File, error) {
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	var fd int
	var err error
	if t.openat2 && len(rel) <= maxResolvePath {
		fd, err = unix.Openat2(t.root, rel, &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: resolveBeneath})
	} else {
		var pfd int
		if pfd, err = t.acquire(d); err != nil {
			return nil, err
		}
		fd, err = unix.Openat(pfd, name, flags, mode)
		t.release(d)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: t.display(rel), Err: noFollowErr(err)}
	}
	return os.NewFile(uintptr(fd), t.display(rel)), nil
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
// existing file.
func (rs *restorer) createFile(fj *fileJob) (*os.File, error) {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL
	f, err := rs.fs.openFile(fj.dir, fj.node.Name, fj.rel, flags, 0o600)
	if errors.Is(err, unix.EEXIST) {
		var pfd int
		if pfd, err = rs.fs.acquire(fj.dir); err == nil {
			err = removeAt(pfd, fj.node.Name)
			rs.fs.release(fj.dir)
		}
		if err == nil {
			f, err = rs.fs.openFile(fj.dir, fj.node.Name, fj.rel, flags, 0o600)
		}
	}
	if err != nil {
		return nil, err
	}
	if rs.opts.Verify || fj.needsIdentity() {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			return nil, &os.PathError{Op: "stat", Path: f.Name(), Err: err}
		}
		fj.ino, fj.dev = st.Ino, st.Dev
	}
	fj.created = true
	return f, nil
}

// errReplaced: the name of a file being restored no longer leads to the
// file created for it.
var errReplaced = errors.New("replaced by something else during the restore")

// reopen opens fj's file again (for more writes or for verify), refusing
// anything but the inode created for it.
func (rs *restorer) reopen(fj *fileJob, flags int) (*os.File, error) {
	f, err := rs.fs.openFile(fj.dir, fj.node.Name, fj.rel, flags, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "stat", Path: f.Name(), Err: err}
	}
	if st.Ino != fj.ino || st.Dev != fj.dev {
		f.Close()
		return nil, fmt.Errorf("%s: %w", f.Name(), errReplaced)
	}
	return f, nil
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
