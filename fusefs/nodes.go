package fusefs

import (
	"context"
	"os"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

const dirMode = os.ModeDir

// contentTimeout is the kernel's entry and attribute cache time for what
// is inside a snapshot: it never changes.
const contentTimeout = 24 * time.Hour

type entryKind int

const (
	kindVirt entryKind = iota // a computed directory
	kindTree                  // a directory of a snapshot
	kindLink                  // a computed symlink
)

// ventry is one entry of a virtual directory.
type ventry struct {
	name string
	kind entryKind
	// ident says what the name stands for (e.g. the snapshot ID), so that
	// a name that comes to mean something else gets a new inode.
	ident  string
	list   func(context.Context) ([]ventry, syscall.Errno) // kindVirt
	node   *snapshot.Node                                  // kindTree: a directory node
	target string                                          // kindLink
}

func (e *ventry) mode() uint32 {
	switch e.kind {
	case kindLink:
		return syscall.S_IFLNK
	}
	return syscall.S_IFDIR
}

func (e *ventry) kindByte() byte { return "vtl"[e.kind] }

// virtDir is a directory whose entries are computed (the top levels).
type virtDir struct {
	fs.Inode
	fsys *FS
	list func(context.Context) ([]ventry, syscall.Errno)
}

var (
	_ fs.NodeGetattrer = (*virtDir)(nil)
	_ fs.NodeLookuper  = (*virtDir)(nil)
	_ fs.NodeReaddirer = (*virtDir)(nil)
)

func (d *virtDir) entries(ctx context.Context) ([]ventry, syscall.Errno) {
	es, errno := d.list(ctx)
	if errno != 0 {
		return nil, errno
	}
	sortEntries(es)
	return es, 0
}

func (d *virtDir) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	es, errno := d.entries(ctx)
	if errno != 0 {
		return errno
	}
	d.fsys.virtAttr(ctx, &out.Attr, syscall.S_IFDIR|0o555, es)
	out.SetTimeout(d.fsys.opts.RefreshInterval)
	return 0
}

func (d *virtDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	es, errno := d.entries(ctx)
	if errno != 0 {
		return nil, errno
	}
	for i := range es {
		if es[i].name == name {
			return d.fsys.newVirtChild(ctx, &d.Inode, &es[i], out)
		}
	}
	return nil, syscall.ENOENT
}

func (d *virtDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	es, errno := d.entries(ctx)
	if errno != 0 {
		return nil, errno
	}
	pino := d.StableAttr().Ino
	list := make([]fuse.DirEntry, len(es))
	for i := range es {
		e := &es[i]
		list[i] = fuse.DirEntry{Name: e.name, Mode: e.mode(), Ino: childIno(pino, e.kindByte(), e.name, e.ident)}
	}
	return fs.NewListDirStream(list), 0
}

// virtAttr fills the attributes of a computed directory or link: owned by
// the mounting user, dated by the newest snapshot.
func (f *FS) virtAttr(ctx context.Context, a *fuse.Attr, mode uint32, es []ventry) {
	a.Mode = mode
	a.Uid, a.Gid = f.uid, f.gid
	a.Nlink = 1
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		a.Nlink = 2
		for i := range es {
			if es[i].kind != kindLink {
				a.Nlink++
			}
		}
	}
	f.mu.Lock()
	t := f.view.newest
	f.mu.Unlock()
	a.SetTimes(&t, &t, &t)
}

// newVirtChild makes the inode for an entry of a virtual directory. The
// name may come to mean something else, so the kernel keeps the entry only
// for the refresh interval.
func (f *FS) newVirtChild(ctx context.Context, parent *fs.Inode, e *ventry, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ino := childIno(parent.StableAttr().Ino, e.kindByte(), e.name, e.ident)
	var ops fs.InodeEmbedder
	switch e.kind {
	case kindVirt:
		sub, errno := e.list(ctx)
		if errno != 0 {
			return nil, errno
		}
		f.virtAttr(ctx, &out.Attr, syscall.S_IFDIR|0o555, sub)
		out.SetAttrTimeout(f.opts.RefreshInterval)
		ops = &virtDir{fsys: f, list: e.list}
	case kindLink:
		f.virtAttr(ctx, &out.Attr, syscall.S_IFLNK|0o777, nil)
		out.Size = uint64(len(e.target))
		out.SetAttrTimeout(f.opts.RefreshInterval)
		ops = &linkNode{fsys: f, node: &snapshot.Node{Type: snapshot.NodeSymlink, LinkTarget: e.target}}
	case kindTree:
		d := &dirNode{fsys: f, node: e.node, path: path.Join("/", parent.Path(nil), e.name)}
		nlink, errno := d.links(ctx)
		if errno != 0 {
			return nil, errno
		}
		fillAttr(&out.Attr, e.node, nlink)
		out.SetAttrTimeout(contentTimeout)
		ops = d
	}
	out.SetEntryTimeout(f.opts.RefreshInterval)
	return parent.NewInode(ctx, ops, fs.StableAttr{Mode: e.mode(), Ino: ino}), 0
}

// dirNode is a directory inside a snapshot. Its tree is loaded (through
// the TreeLoader's cache) when it is looked into.
type dirNode struct {
	fs.Inode
	fsys  *FS
	node  *snapshot.Node
	nlink atomic.Uint32 // 0 until known
	// path is where the directory is in the mount, for messages (the
	// inode is not linked yet when its tree is first loaded).
	path string
}

var (
	_ fs.NodeGetattrer  = (*dirNode)(nil)
	_ fs.NodeLookuper   = (*dirNode)(nil)
	_ fs.NodeReaddirer  = (*dirNode)(nil)
	_ fs.NodeGetxattrer = (*dirNode)(nil)
)

// tree loads the directory's tree. One that cannot be loaded or decoded
// is EIO for this directory only (named in the log once); everything
// around it still works.
func (d *dirNode) tree(ctx context.Context) (*snapshot.Tree, syscall.Errno) {
	if d.node.Subtree == nil {
		return &snapshot.Tree{}, 0
	}
	// Not cancelled with the request: the tree is cached for the next one.
	t, err := d.fsys.tree(context.WithoutCancel(ctx), *d.node.Subtree)
	if err != nil {
		d.fsys.damagedTree(*d.node.Subtree, d.path, err)
		return nil, syscall.EIO
	}
	return t, 0
}

// links is 2 plus the number of subdirectories, as on a local disk. For a
// directory whose tree cannot be loaded it is 2 (not remembered), so that
// the directory itself can still be looked up and stat'ed.
func (d *dirNode) links(ctx context.Context) (uint32, syscall.Errno) {
	if n := d.nlink.Load(); n != 0 {
		return n, 0
	}
	t, errno := d.tree(ctx)
	if errno == syscall.EIO {
		return 2, 0
	}
	if errno != 0 {
		return 0, errno
	}
	n := uint32(2)
	for _, c := range t.Nodes {
		if c.Type == snapshot.NodeDir {
			n++
		}
	}
	d.nlink.Store(n)
	return n, 0
}

func (d *dirNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	nlink, errno := d.links(ctx)
	if errno != 0 {
		return errno
	}
	fillAttr(&out.Attr, d.node, nlink)
	out.SetTimeout(contentTimeout)
	return 0
}

func findChild(t *snapshot.Tree, name string) *snapshot.Node {
	if n := t.Find(name); n != nil {
		return n
	}
	for _, n := range t.Nodes { // foreign, unsorted tree
		if n.Name == name {
			return n
		}
	}
	return nil
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	t, errno := d.tree(ctx)
	if errno != 0 {
		return nil, errno
	}
	n := findChild(t, name)
	if n == nil {
		return nil, syscall.ENOENT
	}
	var ops fs.InodeEmbedder
	nlink := fileLinks(n)
	switch n.Type {
	case snapshot.NodeDir:
		d.fsys.prefetchAfter(t, n) // a walk goes on with the next ones
		c := &dirNode{fsys: d.fsys, node: n, path: d.path + "/" + name}
		if nlink, errno = c.links(ctx); errno != 0 {
			return nil, errno
		}
		ops = c
	case snapshot.NodeFile:
		ops = &fileNode{fsys: d.fsys, node: n}
	case snapshot.NodeSymlink:
		ops = &linkNode{fsys: d.fsys, node: n}
	default:
		ops = &specialNode{node: n}
	}
	fillAttr(&out.Attr, n, nlink)
	out.SetEntryTimeout(contentTimeout)
	out.SetAttrTimeout(contentTimeout)
	ino := childIno(d.StableAttr().Ino, 't', name, "")
	return d.NewInode(ctx, ops, fs.StableAttr{Mode: fileType(n.Type), Ino: ino}), 0
}

func (d *dirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	t, errno := d.tree(ctx)
	if errno != 0 {
		return nil, errno
	}
	d.fsys.prefetchSubtrees(t, 0) // a walk looks them up next
	pino := d.StableAttr().Ino
	list := make([]fuse.DirEntry, 0, len(t.Nodes))
	var seen map[string]bool // for unsorted trees only
	sorted := slices.IsSortedFunc(t.Nodes, func(a, b *snapshot.Node) int { return strings.Compare(a.Name, b.Name) })
	for i, n := range t.Nodes {
		if n.Name == "" || strings.ContainsAny(n.Name, "/\x00") || n.Name == "." || n.Name == ".." {
			continue // cannot be a file name
		}
		// A repeated name is listed once, as the node Lookup finds (the first).
		if sorted {
			if i > 0 && t.Nodes[i-1].Name == n.Name {
				continue
			}
		} else {
			if seen == nil {
				seen = map[string]bool{}
			}
			if seen[n.Name] {
				continue
			}
			seen[n.Name] = true
		}
		list = append(list, fuse.DirEntry{Name: n.Name, Mode: fileType(n.Type), Ino: childIno(pino, 't', n.Name, "")})
	}
	return fs.NewListDirStream(list), 0
}

func (d *dirNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(d.node, attr, dest)
}

func (d *dirNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(d.node, dest)
}

// fileNode is a regular file inside a snapshot.
type fileNode struct {
	fs.Inode
	fsys *FS
	node *snapshot.Node
}

var (
	_ fs.NodeOpener     = (*fileNode)(nil)
	_ fs.NodeGetattrer  = (*fileNode)(nil)
	_ fs.NodeGetxattrer = (*fileNode)(nil)
)

func (n *fileNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, n.node, fileLinks(n.node))
	out.SetTimeout(contentTimeout)
	return 0
}

func (n *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EROFS
	}
	fr, err := browse.NewFileReader(context.Background(), n.fsys.r, n.fsys.cache, n.node)
	if err != nil {
		n.fsys.warn(err)
		return nil, 0, syscall.EIO
	}
	fr.ReadAhead = n.fsys.opts.ReadAhead
	// The content never changes: the kernel may keep its pages.
	return &fileHandle{fsys: n.fsys, fr: fr}, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *fileNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(n.node, attr, dest)
}

func (n *fileNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(n.node, dest)
}

type fileHandle struct {
	fsys *FS
	fr   *browse.FileReader
}

var _ fs.FileReader = (*fileHandle)(nil)

func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	sp, err := h.fr.Span(ctx, off, len(dest))
	if err != nil {
		if ctx.Err() != nil {
			return nil, syscall.EINTR
		}
		h.fsys.warn(err)
		return nil, syscall.EIO
	}
	return &spanResult{sp: sp}, 0
}

// spanResult hands cached blob data to go-fuse without copying it: go-fuse
// writes the slices to the kernel (its withSlice path) and then calls Done,
// which lets the cache reuse the buffers.
type spanResult struct {
	sp *browse.Span
}

var _ fuse.ReadResult = (*spanResult)(nil)

func (r *spanResult) Size() int { return r.sp.Len() }

// Slices is go-fuse's scatter-gather path: the slices stay valid until Done.
func (r *spanResult) Slices() ([][]byte, fuse.Status) { return r.sp.Slices(), fuse.OK }

// Bytes copies, so that the result does not depend on Done being called
// only after it is used.
func (r *spanResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	if cap(buf) < r.sp.Len() {
		buf = make([]byte, r.sp.Len())
	}
	return buf[:r.sp.CopyTo(buf[:r.sp.Len()])], fuse.OK
}

func (r *spanResult) Done() { r.sp.Release() }

// linkNode is a symlink, inside a snapshot or computed ("latest").
type linkNode struct {
	fs.Inode
	fsys *FS
	node *snapshot.Node
}

var _ fs.NodeReadlinker = (*linkNode)(nil)

func (n *linkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	return []byte(n.node.LinkTarget), 0
}

func (n *linkNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if n.node.ModTime.IsZero() { // computed link
		n.fsys.virtAttr(ctx, &out.Attr, syscall.S_IFLNK|0o777, nil)
		out.Size = uint64(len(n.node.LinkTarget))
		out.SetTimeout(n.fsys.opts.RefreshInterval)
		return 0
	}
	fillAttr(&out.Attr, n.node, fileLinks(n.node))
	out.SetTimeout(contentTimeout)
	return 0
}

func (n *linkNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(n.node, attr, dest)
}

func (n *linkNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(n.node, dest)
}

// specialNode is a device, fifo or socket inside a snapshot.
type specialNode struct {
	fs.Inode
	node *snapshot.Node
}

func (n *specialNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, n.node, fileLinks(n.node))
	out.SetTimeout(contentTimeout)
	return 0
}
