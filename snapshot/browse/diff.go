package browse

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// Diff modifiers, as restic prints them.
const (
	DiffAdded    = "+"
	DiffRemoved  = "-"
	DiffModified = "M" // content changed
	DiffType     = "T" // type changed
	DiffMetadata = "U" // metadata only (with DiffOptions.Metadata)
)

// DiffOptions tune Diff.
type DiffOptions struct {
	// Metadata reports nodes whose content is the same but whose mode,
	// owner, mtime or extended attributes changed ("U").
	Metadata bool
	// Damaged, when set, is told about trees that cannot be loaded or
	// decoded and entries with unusable names (see WalkDamaged); the diff
	// goes on without them. Unset, the first one ends the diff.
	Damaged snapshot.DamagedFunc
}

// DiffChange is one changed path. Old or New is nil for added or
// removed nodes.
type DiffChange struct {
	Path     string
	Modifier string
	Old, New *snapshot.Node
}

// DisplayPath is the path with a trailing "/" for directories.
func (c DiffChange) DisplayPath() string {
	n := c.New
	if n == nil {
		n = c.Old
	}
	if n != nil && n.Type == snapshot.NodeDir && c.Path != "/" {
		return c.Path + "/"
	}
	return c.Path
}

// DiffCounts counts one side of a diff: nodes only there and blobs only
// there (Bytes: their plaintext size, data blobs only).
type DiffCounts struct {
	Files     int    `json:"files"`
	Dirs      int    `json:"dirs"`
	Others    int    `json:"others"`
	DataBlobs int    `json:"data_blobs"`
	TreeBlobs int    `json:"tree_blobs"`
	Bytes     uint64 `json:"bytes"`
}

// DiffStats summarise a diff.
type DiffStats struct {
	ChangedFiles int        `json:"changed_files"`
	Added        DiffCounts `json:"added"`
	Removed      DiffCounts `json:"removed"`
}

type differ struct {
	loader *snapshot.TreeLoader
	// old and new side trees of the directories the diff descends into,
	// loaded ahead (Hint) a level at a time: only subtrees that differ
	oldRA, newRA *snapshot.ReadAhead
	opts         DiffOptions
	fn           func(DiffChange) error
	stats        DiffStats
	// blobs seen on each side, outside subtrees that both sides share
	oldBlobs, newBlobs map[repo.BlobHandle]struct{}
}

// Diff compares snapshot trees a (old) and b (new) and calls fn for every
// change in path order. Subtrees with the same ID on both sides are
// skipped without loading them. The blob counts compare the blobs of the
// parts that differ, so a blob that also occurs in an identical subtree
// elsewhere may be counted as added or removed.
func Diff(ctx context.Context, loader *snapshot.TreeLoader, a, b repo.ID, opts DiffOptions, fn func(DiffChange) error) (*DiffStats, error) {
	d := &differ{loader: loader, opts: opts, fn: fn,
		oldBlobs: map[repo.BlobHandle]struct{}{}, newBlobs: map[repo.BlobHandle]struct{}{}}
	if a != b {
		d.oldRA, d.newRA = loader.ReadAhead(ctx, nil), loader.ReadAhead(ctx, nil)
		defer d.oldRA.Close()
		defer d.newRA.Close()
		d.oldBlobs[repo.BlobHandle{ID: a, Type: repo.TreeBlob}] = struct{}{}
		d.newBlobs[repo.BlobHandle{ID: b, Type: repo.TreeBlob}] = struct{}{}
		if err := d.trees(ctx, "/", a, b); err != nil {
			return nil, err
		}
	}
	d.count(d.newBlobs, d.oldBlobs, &d.stats.Added)
	d.count(d.oldBlobs, d.newBlobs, &d.stats.Removed)
	return &d.stats, nil
}

// count adds the blobs of side that are not in other to c.
func (d *differ) count(side, other map[repo.BlobHandle]struct{}, c *DiffCounts) {
	r := d.loader.Repository()
	for h := range side {
		if _, ok := other[h]; ok {
			continue
		}
		if h.Type == repo.TreeBlob {
			c.TreeBlobs++
			continue
		}
		c.DataBlobs++
		if locs := r.LookupBlob(h.Type, h.ID); len(locs) > 0 {
			c.Bytes += uint64(locs[0].PlaintextLength())
		}
	}
}

// trees compares two directory trees at dir, merging their sorted nodes.
func (d *differ) trees(ctx context.Context, dir string, a, b repo.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	na, ok, err := d.nodes(ctx, dir, a, d.oldRA)
	if !ok {
		return err
	}
	nb, ok, err := d.nodes(ctx, dir, b, d.newRA)
	if !ok {
		return err
	}
	d.hintChanged(dir, na, nb)
	i, j := 0, 0
	for i < len(na) || j < len(nb) {
		var c int
		switch {
		case i == len(na):
			c = 1
		case j == len(nb):
			c = -1
		default:
			c = strings.Compare(na[i].Name, nb[j].Name)
		}
		var err error
		switch {
		case c < 0:
			err = d.onlyOne(ctx, path.Join(dir, na[i].Name), na[i], false)
			i++
		case c > 0:
			err = d.onlyOne(ctx, path.Join(dir, nb[j].Name), nb[j], true)
			j++
		default:
			err = d.both(ctx, path.Join(dir, na[i].Name), na[i], nb[j])
			i++
			j++
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// onlyOne reports a node (and everything below it) that exists on one
// side only.
func (d *differ) onlyOne(ctx context.Context, p string, n *snapshot.Node, added bool) error {
	mod, counts, blobs := DiffRemoved, &d.stats.Removed, d.oldBlobs
	if added {
		mod, counts, blobs = DiffAdded, &d.stats.Added, d.newBlobs
	}
	visit := func(p string, n *snapshot.Node) error {
		switch n.Type {
		case snapshot.NodeFile:
			counts.Files++
		case snapshot.NodeDir:
			counts.Dirs++
		default:
			counts.Others++
		}
		addBlobs(blobs, n)
		c := DiffChange{Path: p, Modifier: mod}
		if added {
			c.New = n
		} else {
			c.Old = n
		}
		return d.fn(c)
	}
	if err := visit(p, n); err != nil {
		return err
	}
	if n.Type != snapshot.NodeDir {
		return nil
	}
	if n.Subtree == nil {
		if d.opts.Damaged != nil {
			return d.opts.Damaged(p, errors.New("directory node has no subtree"))
		}
		return nil
	}
	fn := func(rel string, n *snapshot.Node) error { return visit(path.Join(p, rel), n) }
	if d.opts.Damaged == nil {
		return snapshot.Walk(ctx, d.loader, *n.Subtree, fn)
	}
	return snapshot.WalkDamaged(ctx, d.loader, *n.Subtree, fn, func(rel string, err error) error {
		return d.opts.Damaged(path.Join(p, rel), err)
	})
}

// hintChanged loads ahead the trees of the subdirectories of dir that
// both sides have with different contents: trees will descend into them.
func (d *differ) hintChanged(dir string, na, nb []*snapshot.Node) {
	i, j := 0, 0
	for i < len(na) && j < len(nb) {
		switch c := strings.Compare(na[i].Name, nb[j].Name); {
		case c < 0:
			i++
		case c > 0:
			j++
		default:
			a, b := na[i], nb[j]
			if a.Type == snapshot.NodeDir && b.Type == snapshot.NodeDir && a.Subtree != nil && b.Subtree != nil && *a.Subtree != *b.Subtree {
				p := path.Join(dir, a.Name)
				d.oldRA.Hint(p, *a.Subtree)
				d.newRA.Hint(p, *b.Subtree)
			}
			i++
			j++
		}
	}
}

// nodes returns the entries of directory dir (tree id) in name order,
// through ra when set. With a Damaged handler, a tree that cannot be loaded
// is reported and ok is false with a nil error (skip it), and unusable
// entries are reported and left out.
func (d *differ) nodes(ctx context.Context, dir string, id repo.ID, ra *snapshot.ReadAhead) (nodes []*snapshot.Node, ok bool, err error) {
	var t *snapshot.Tree
	if ra != nil {
		t, err = ra.Tree(ctx, dir, id)
	} else {
		t, err = d.loader.Tree(ctx, id)
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, false, cerr
		}
		if d.opts.Damaged == nil {
			return nil, false, fmt.Errorf("diff %s: %w", dir, err)
		}
		return nil, false, d.opts.Damaged(dir, err)
	}
	all := snapshot.SortedNodes(t)
	if d.opts.Damaged == nil {
		return all, true, nil
	}
	for i, n := range all {
		if msg := snapshot.NameProblem(all, i); msg != "" {
			if err := d.opts.Damaged(dir, snapshot.BadEntry(n.Name, msg)); err != nil {
				return nil, false, err
			}
			continue
		}
		nodes = append(nodes, n)
	}
	return nodes, true, nil
}

// children reports everything below directory p (tree id) as added or
// removed.
func (d *differ) children(ctx context.Context, p string, id repo.ID, added bool) error {
	nodes, ok, err := d.nodes(ctx, p, id, nil)
	if !ok {
		return err
	}
	for _, n := range nodes {
		if err := d.onlyOne(ctx, path.Join(p, n.Name), n, added); err != nil {
			return err
		}
	}
	return nil
}

func addBlobs(set map[repo.BlobHandle]struct{}, n *snapshot.Node) {
	for _, id := range n.Content {
		set[repo.BlobHandle{ID: id, Type: repo.DataBlob}] = struct{}{}
	}
	if n.Subtree != nil {
		set[repo.BlobHandle{ID: *n.Subtree, Type: repo.TreeBlob}] = struct{}{}
	}
}

// both compares a node present on both sides.
func (d *differ) both(ctx context.Context, p string, a, b *snapshot.Node) error {
	if a.Type != b.Type {
		d.stats.ChangedFiles++
		if err := d.fn(DiffChange{Path: p, Modifier: DiffType, Old: a, New: b}); err != nil {
			return err
		}
		// What was below the old node is gone, what is below the new one is
		// new; the nodes themselves were reported as "T".
		addBlobs(d.oldBlobs, a)
		addBlobs(d.newBlobs, b)
		if a.Type == snapshot.NodeDir && a.Subtree != nil {
			if err := d.children(ctx, p, *a.Subtree, false); err != nil {
				return err
			}
		}
		if b.Type == snapshot.NodeDir && b.Subtree != nil {
			return d.children(ctx, p, *b.Subtree, true)
		}
		return nil
	}
	if a.Type == snapshot.NodeDir {
		if d.opts.Metadata && !sameMeta(a, b) {
			if err := d.fn(DiffChange{Path: p, Modifier: DiffMetadata, Old: a, New: b}); err != nil {
				return err
			}
		}
		if a.Subtree == nil || b.Subtree == nil || *a.Subtree == *b.Subtree {
			return nil
		}
		addBlobs(d.oldBlobs, a)
		addBlobs(d.newBlobs, b)
		return d.trees(ctx, p, *a.Subtree, *b.Subtree)
	}
	if !sameContent(a, b) {
		d.stats.ChangedFiles++
		addBlobs(d.oldBlobs, a)
		addBlobs(d.newBlobs, b)
		return d.fn(DiffChange{Path: p, Modifier: DiffModified, Old: a, New: b})
	}
	if d.opts.Metadata && !sameMeta(a, b) {
		return d.fn(DiffChange{Path: p, Modifier: DiffMetadata, Old: a, New: b})
	}
	return nil
}

// sameContent compares what a node holds: file blobs, link target,
// device number.
func sameContent(a, b *snapshot.Node) bool {
	switch a.Type {
	case snapshot.NodeFile:
		return a.Size == b.Size && slices.Equal(a.Content, b.Content)
	case snapshot.NodeSymlink:
		return a.LinkTarget == b.LinkTarget
	case snapshot.NodeDev, snapshot.NodeCharDev:
		return a.Device == b.Device
	}
	return true
}

// sameMeta compares the metadata that restore applies (not atime/ctime).
func sameMeta(a, b *snapshot.Node) bool {
	if a.Mode != b.Mode || !a.ModTime.Equal(b.ModTime) || a.UID != b.UID || a.GID != b.GID ||
		a.User != b.User || a.Group != b.Group || len(a.ExtendedAttributes) != len(b.ExtendedAttributes) {
		return false
	}
	for i, x := range a.ExtendedAttributes {
		y := b.ExtendedAttributes[i]
		if x.Name != y.Name || string(x.Value) != string(y.Value) {
			return false
		}
	}
	return true
}
