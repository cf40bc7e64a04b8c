package fusefs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// MountOptions are the options of the mount itself.
type MountOptions struct {
	// AllowOther lets users other than the mounting one in.
	AllowOther bool
	// DefaultPermissions makes the kernel check the files' modes
	// against the caller.
	DefaultPermissions bool
	// Debug logs every FUSE request.
	Debug bool
}

// Mounted is a mounted file system.
type Mounted struct {
	Server *fuse.Server
	Dir    string
	done   chan struct{}
}

// Mount mounts f read-only on dir and serves it in the background. It
// tries mount(2) itself first (which needs root) and falls back to
// fusermount3.
func Mount(dir string, f *FS, mo MountOptions) (*Mounted, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	long := contentTimeout
	opts := &fs.Options{
		EntryTimeout:    &long,
		AttrTimeout:     &long,
		NullPermissions: true, // a 0000 file must not become 0644
		MountOptions: fuse.MountOptions{
			FsName:             "cairn",
			Name:               "cairn",
			AllowOther:         mo.AllowOther,
			Options:            []string{"ro"},
			DirectMount:        true,
			DirectMountFlags:   syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_RDONLY,
			MaxWrite:           1 << 20,
			MaxReadAhead:       1 << 20,
			DisableReadDirPlus: true,
			Debug:              mo.Debug,
		},
	}
	if mo.DefaultPermissions {
		opts.Options = append(opts.Options, "default_permissions")
	}
	root := &virtDir{fsys: f, list: f.rootEntries}
	srv, err := fs.Mount(abs, root, opts)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", abs, err)
	}
	raiseReadAhead(abs, readAheadKiB)
	m := &Mounted{Server: srv, Dir: abs, done: make(chan struct{})}
	go func() {
		srv.Wait()
		close(m.done)
	}()
	return m, nil
}

// readAheadKiB is the kernel read-ahead the mount asks for: one maximal
// FUSE read (MaxWrite), so that sequential reads arrive as 1 MiB requests
// with the next one already under way, instead of 128 KiB ones. (Larger
// windows measured slower: the reading process then spends more time
// allocating page cache than it gains.)
const readAheadKiB = 1024

// raiseReadAhead sets the read-ahead of the mount's backing device info to
// kib unless it is larger already. The kernel caps what a FUSE server can
// ask for at mount time at its default (128 KiB); the sysfs knob of the
// mount's own bdi is the way past that. It is writable by root only, so
// other users keep the default, silently: this is only about speed.
func raiseReadAhead(mountPoint string, kib int) {
	var st unix.Stat_t
	if err := unix.Stat(mountPoint, &st); err != nil {
		return
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	cur, err := os.ReadFile(p)
	if err != nil {
		return
	}
	if n, err := strconv.Atoi(strings.TrimSpace(string(cur))); err == nil && n >= kib {
		return
	}
	_ = os.WriteFile(p, []byte(strconv.Itoa(kib)), 0)
}

// Done is closed when the file system is no longer served: after Unmount,
// or when someone else unmounted it (fusermount3 -u).
func (m *Mounted) Done() <-chan struct{} { return m.done }

// Unmount unmounts the file system; if that fails (e.g. it is busy) it
// detaches it lazily (fusermount3 -u -z), so the mount point is free at
// once and the kernel lets go when the last user is gone.
func (m *Mounted) Unmount() error {
	select {
	case <-m.done:
		return nil
	default:
	}
	err := m.Server.Unmount()
	if err == nil {
		return nil
	}
	out, lerr := exec.Command("fusermount3", "-u", "-z", m.Dir).CombinedOutput()
	if lerr != nil {
		if uerr := syscall.Unmount(m.Dir, syscall.MNT_DETACH); uerr != nil {
			return fmt.Errorf("unmount %s: %v; lazy unmount: %v %s", m.Dir, err, lerr, strings.TrimSpace(string(out)))
		}
	}
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
	}
	return nil
}

// ErrNotMountable is returned by CheckMountPoint.
var ErrNotMountable = errors.New("cannot mount here")

// CheckMountPoint makes sure dir exists, is a directory and has nothing
// mounted on it.
func CheckMountPoint(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return fmt.Errorf("%w: mount point %s is busy: a FUSE file system there is gone but still mounted; run `fusermount3 -u %s`", ErrNotMountable, dir, dir)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: mount point %s does not exist; create it first (mkdir %s)", ErrNotMountable, dir, dir)
	case err != nil:
		return fmt.Errorf("%w: mount point %s: %v", ErrNotMountable, dir, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: mount point %s is not a directory", ErrNotMountable, dir)
	}
	busy, err := IsMountPoint(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotMountable, err)
	}
	if busy {
		return fmt.Errorf("%w: mount point %s is busy: something is mounted there already; unmount it first (fusermount3 -u %s)", ErrNotMountable, dir, dir)
	}
	return nil
}

// IsMountPoint reports whether something is mounted on dir, from
// /proc/self/mountinfo.
func IsMountPoint(dir string) (bool, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && unescapeMountPath(fields[4]) == abs {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read mount table: %w", err)
	}
	return false, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
