// Package browse reads snapshots for people: ls, find, diff, dump (tar and
// zip), stats, and reading file contents through a shared blob cache
// (BlobCache, FileReader), which the FUSE mount and cluster restore use too.
package browse

import (
	"context"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// Ls calls fn for the entries of directory dir in the snapshot tree root,
// in name order: its children, or with recursive everything below it
// (depth first). If dir is not a directory, fn sees just that node. Paths
// are absolute slash paths inside the snapshot. Damaged trees and entries
// below dir go to damaged (see WalkDamaged); nil makes them errors.
func Ls(ctx context.Context, loader *snapshot.TreeLoader, root repo.ID, dir string, recursive bool, fn func(p string, n *snapshot.Node) error, damaged snapshot.DamagedFunc) error {
	dir = path.Clean("/" + dir)
	node, err := snapshot.FindNode(ctx, loader, root, dir)
	if err != nil {
		return err
	}
	if node.Type != snapshot.NodeDir {
		return fn(dir, node)
	}
	if node.Subtree == nil {
		return fmt.Errorf("ls %s: directory node has no subtree", dir)
	}
	walk := func(p string, n *snapshot.Node) error {
		if err := fn(path.Join(dir, p), n); err != nil {
			return err
		}
		if !recursive && n.Type == snapshot.NodeDir {
			return snapshot.ErrSkipDir
		}
		return nil
	}
	if damaged == nil {
		return snapshot.Walk(ctx, loader, *node.Subtree, walk)
	}
	return snapshot.WalkDamaged(ctx, loader, *node.Subtree, walk, func(p string, err error) error {
		return damaged(path.Join(dir, p), err)
	})
}

// ModeString renders a node's type and permissions like `ls -l`
// ("drwxr-xr-x", "-rwsr-x---", "lrwxrwxrwx").
func ModeString(n *snapshot.Node) string {
	var b [10]byte
	switch n.Type {
	case snapshot.NodeDir:
		b[0] = 'd'
	case snapshot.NodeSymlink:
		b[0] = 'l'
	case snapshot.NodeDev:
		b[0] = 'b'
	case snapshot.NodeCharDev:
		b[0] = 'c'
	case snapshot.NodeFifo:
		b[0] = 'p'
	case snapshot.NodeSocket:
		b[0] = 's'
	case snapshot.NodeFile:
		b[0] = '-'
	default:
		b[0] = '?'
	}
	const rwx = "rwxrwxrwx"
	perm := n.Mode.Perm()
	for i := 0; i < 9; i++ {
		if perm&(1<<uint(8-i)) != 0 {
			b[i+1] = rwx[i]
		} else {
			b[i+1] = '-'
		}
	}
	special := func(pos int, set bool, lower, upper byte) {
		if !set {
			return
		}
		if b[pos] == '-' {
			b[pos] = upper
		} else {
			b[pos] = lower
		}
	}
	special(3, n.Mode&os.ModeSetuid != 0, 's', 'S')
	special(6, n.Mode&os.ModeSetgid != 0, 's', 'S')
	special(9, n.Mode&os.ModeSticky != 0, 't', 'T')
	return string(b[:])
}

// UnixMode turns a node's Go mode bits into st_mode permission bits
// (0o7777: permissions plus setuid, setgid and sticky).
func UnixMode(m os.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// OwnerName is the user name recorded for n, or its uid.
func OwnerName(n *snapshot.Node) string {
	if n.User != "" {
		return n.User
	}
	return strconv.FormatUint(uint64(n.UID), 10)
}

// GroupName is the group name recorded for n, or its gid.
func GroupName(n *snapshot.Node) string {
	if n.Group != "" {
		return n.Group
	}
	return strconv.FormatUint(uint64(n.GID), 10)
}

// LsTimeFormat is how ls and find print modification times (local time).
const LsTimeFormat = "2006-01-02 15:04:05"

// FormatLong renders one `ls -l` style line (without newline): mode,
// owner, group, size, mtime, path and, for symlinks, "-> target". esc, if
// not nil, is applied to the names (path, owner, group, link target), e.g.
// to escape control characters for a terminal.
func FormatLong(p string, n *snapshot.Node, esc func(string) string) string {
	if esc == nil {
		esc = func(s string) string { return s }
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-8s %-8s %10d %s %s", ModeString(n), esc(OwnerName(n)), esc(GroupName(n)),
		n.Size, n.ModTime.Local().Format(LsTimeFormat), esc(p))
	if n.Type == snapshot.NodeSymlink {
		b.WriteString(" -> " + esc(n.LinkTarget))
	}
	return b.String()
}

// LsJSON is a node as `ls --json` and `find --json` print it, with
// restic's field names.
type LsJSON struct {
	Name        string            `json:"name"`
	Type        snapshot.NodeType `json:"type"`
	Path        string            `json:"path"`
	UID         uint32            `json:"uid"`
	GID         uint32            `json:"gid"`
	User        string            `json:"user,omitempty"`
	Group       string            `json:"group,omitempty"`
	Size        uint64            `json:"size"`
	Mode        uint32            `json:"mode"`
	Permissions string            `json:"permissions"`
	ModTime     time.Time         `json:"mtime"`
	AccessTime  time.Time         `json:"atime"`
	ChangeTime  time.Time         `json:"ctime"`
	Inode       uint64            `json:"inode,omitempty"`
	Links       uint64            `json:"links,omitempty"`
	LinkTarget  string            `json:"linktarget,omitempty"`
	StructType  string            `json:"struct_type"`
}

// NewLsJSON describes node n at path p.
func NewLsJSON(p string, n *snapshot.Node) LsJSON {
	return LsJSON{
		Name: n.Name, Type: n.Type, Path: p, UID: n.UID, GID: n.GID, User: n.User, Group: n.Group,
		Size: n.Size, Mode: uint32(n.Mode), Permissions: ModeString(n),
		ModTime: n.ModTime, AccessTime: n.AccessTime, ChangeTime: n.ChangeTime,
		Inode: n.Inode, Links: n.Links, LinkTarget: n.LinkTarget, StructType: "node",
	}
}
