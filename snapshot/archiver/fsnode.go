package archiver

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sys/unix"
)

// modeMask keeps what restic keeps of os.FileMode: permissions, the type
// bits and setuid/setgid/sticky.
const modeMask = os.ModePerm | os.ModeType | os.ModeSetuid | os.ModeSetgid | os.ModeSticky

// NodeFromFileInfo builds the node of the entry at path from its lstat
// information, the way restic does: the name is fi.Name(), files get their
// size (Content is left to the caller), symlinks their target, device nodes
// their rdev. Extended attributes are read when xattrs is set; failing to
// read them is not an error (many file systems lack them).
func NodeFromFileInfo(path string, fi os.FileInfo, xattrs bool) (*snapshot.Node, error) {
	n := &snapshot.Node{
		Name:    fi.Name(),
		Type:    nodeType(fi.Mode()),
		Mode:    fi.Mode() & modeMask,
		ModTime: fi.ModTime(),
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		n.AccessTime = time.Unix(st.Atim.Unix())
		n.ChangeTime = time.Unix(st.Ctim.Unix())
		n.ModTime = time.Unix(st.Mtim.Unix())
		n.UID, n.GID = st.Uid, st.Gid
		n.User, n.Group = lookupUser(st.Uid), lookupGroup(st.Gid)
		n.Inode = st.Ino
		// The conversions matter on platforms where these are narrower.
		n.DeviceID = uint64(st.Dev)
		n.Links = uint64(st.Nlink)
		if n.Type == snapshot.NodeDev || n.Type == snapshot.NodeCharDev {
			n.Device = uint64(st.Rdev)
		}
	} else {
		n.AccessTime, n.ChangeTime = n.ModTime, n.ModTime
	}
	switch n.Type {
	case snapshot.NodeFile:
		n.Size = uint64(fi.Size())
	case snapshot.NodeSymlink:
		target, err := os.Readlink(path)
		if err != nil {
			return nil, fmt.Errorf("read symlink: %w", err)
		}
		n.LinkTarget = target
	}
	if xattrs {
		n.ExtendedAttributes = readXattrs(path)
	}
	return n, nil
}

func nodeType(m os.FileMode) snapshot.NodeType {
	switch {
	case m.IsRegular():
		return snapshot.NodeFile
	case m.IsDir():
		return snapshot.NodeDir
	case m&os.ModeSymlink != 0:
		return snapshot.NodeSymlink
	case m&os.ModeCharDevice != 0:
		return snapshot.NodeCharDev
	case m&os.ModeDevice != 0:
		return snapshot.NodeDev
	case m&os.ModeNamedPipe != 0:
		return snapshot.NodeFifo
	case m&os.ModeSocket != 0:
		return snapshot.NodeSocket
	}
	return snapshot.NodeIrregular
}

// Name lookups go through /etc/passwd or NSS and are slow; a backup asks for
// the same few ids over and over.
var idNames struct {
	sync.Mutex
	users, groups map[uint32]string
}

func lookupUser(uid uint32) string {
	return lookupID(uid, &idNames.users, func(s string) (string, error) {
		u, err := user.LookupId(s)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	})
}

func lookupGroup(gid uint32) string {
	return lookupID(gid, &idNames.groups, func(s string) (string, error) {
		g, err := user.LookupGroupId(s)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	})
}

func lookupID(id uint32, cache *map[uint32]string, lookup func(string) (string, error)) string {
	idNames.Lock()
	defer idNames.Unlock()
	if *cache == nil {
		*cache = map[uint32]string{}
	}
	if name, ok := (*cache)[id]; ok {
		return name
	}
	name, err := lookup(strconv.FormatUint(uint64(id), 10))
	if err != nil {
		name = "" // unknown ids are stored without a name, as restic does
	}
	(*cache)[id] = name
	return name
}

// readXattrs returns the extended attributes of path (not following
// symlinks), sorted by name so equal files give equal trees.
func readXattrs(path string) []snapshot.ExtendedAttribute {
	var stack [1024]byte // no allocation for the usual empty list
	buf := stack[:]
	sz, err := unix.Llistxattr(path, buf)
	if errors.Is(err, unix.ERANGE) {
		if sz, err = unix.Llistxattr(path, nil); err == nil {
			buf = make([]byte, sz)
			sz, err = unix.Llistxattr(path, buf)
		}
	}
	if err != nil || sz <= 0 {
		return nil
	}
	return xattrValues(buf[:sz], func(name string, b []byte) (int, error) { return unix.Lgetxattr(path, name, b) })
}

// readXattrsFd is readXattrs for an open file.
func readXattrsFd(fd int) []snapshot.ExtendedAttribute {
	var stack [1024]byte
	buf := stack[:]
	sz, err := unix.Flistxattr(fd, buf)
	if errors.Is(err, unix.ERANGE) {
		if sz, err = unix.Flistxattr(fd, nil); err == nil {
			buf = make([]byte, sz)
			sz, err = unix.Flistxattr(fd, buf)
		}
	}
	if err != nil || sz <= 0 {
		return nil
	}
	return xattrValues(buf[:sz], func(name string, b []byte) (int, error) { return unix.Fgetxattr(fd, name, b) })
}

// xattrValues reads the value of each name in list (NUL-terminated names)
// with get, sorted by name.
func xattrValues(list []byte, get func(string, []byte) (int, error)) []snapshot.ExtendedAttribute {
	names := strings.Split(strings.TrimRight(string(list), "\x00"), "\x00")
	slices.Sort(names)
	var out []snapshot.ExtendedAttribute
	for _, name := range names {
		if name == "" {
			continue
		}
		val, err := getXattr(get, name)
		if err != nil {
			continue // vanished or not readable: skip this one attribute
		}
		out = append(out, snapshot.ExtendedAttribute{Name: name, Value: val})
	}
	return out
}

func getXattr(get func(string, []byte) (int, error), name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		sz, err := get(name, buf)
		if errors.Is(err, unix.ERANGE) {
			if sz, err = get(name, nil); err != nil {
				return nil, err
			}
			buf = make([]byte, sz+1)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:sz:sz], nil
	}
}
