package fusefs

import (
	"hash/fnv"
	"syscall"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// childIno derives a stable inode number from the parent's and the
// child's name (and identity). It stays below go-fuse's automatic range
// (2^63) and above the root's (1).
func childIno(parent uint64, kind byte, name, ident string) uint64 {
	h := fnv.New64a()
	var b [9]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(parent >> (8 * i))
	}
	b[8] = kind
	h.Write(b[:])
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(ident))
	ino := h.Sum64() &^ (1 << 63)
	if ino < 2 {
		ino += 2
	}
	return ino
}

// fileType maps a node type to st_mode's type bits.
func fileType(t snapshot.NodeType) uint32 {
	switch t {
	case snapshot.NodeDir:
		return syscall.S_IFDIR
	case snapshot.NodeSymlink:
		return syscall.S_IFLNK
	case snapshot.NodeDev:
		return syscall.S_IFBLK
	case snapshot.NodeCharDev:
		return syscall.S_IFCHR
	case snapshot.NodeFifo:
		return syscall.S_IFIFO
	case snapshot.NodeSocket:
		return syscall.S_IFSOCK
	}
	return syscall.S_IFREG
}

// fillAttr copies a node's metadata into FUSE attributes.
func fillAttr(a *fuse.Attr, n *snapshot.Node, nlink uint32) {
	a.Mode = fileType(n.Type) | browse.UnixMode(n.Mode)
	a.Size = n.Size
	if n.Type == snapshot.NodeSymlink {
		a.Size = uint64(len(n.LinkTarget))
	}
	if n.Type == snapshot.NodeDir {
		a.Size = 0
	}
	a.Uid, a.Gid = n.UID, n.GID
	a.Nlink = nlink
	mtime, atime, ctime := n.ModTime, n.AccessTime, n.ChangeTime
	if atime.IsZero() {
		atime = mtime
	}
	if ctime.IsZero() {
		ctime = mtime
	}
	a.SetTimes(&atime, &mtime, &ctime)
	if n.Type == snapshot.NodeDev || n.Type == snapshot.NodeCharDev {
		a.Rdev = uint32(n.Device)
	}
}

func fileLinks(n *snapshot.Node) uint32 {
	if n.Links > 0 {
		return uint32(n.Links)
	}
	return 1
}

func getxattr(n *snapshot.Node, attr string, dest []byte) (uint32, syscall.Errno) {
	for _, xa := range n.ExtendedAttributes {
		if xa.Name != attr {
			continue
		}
		if len(dest) < len(xa.Value) {
			return uint32(len(xa.Value)), syscall.ERANGE
		}
		return uint32(copy(dest, xa.Value)), 0
	}
	return 0, syscall.ENODATA
}

func listxattr(n *snapshot.Node, dest []byte) (uint32, syscall.Errno) {
	size := 0
	for _, xa := range n.ExtendedAttributes {
		size += len(xa.Name) + 1
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	off := 0
	for _, xa := range n.ExtendedAttributes {
		off += copy(dest[off:], xa.Name)
		dest[off] = 0
		off++
	}
	return uint32(size), 0
}
