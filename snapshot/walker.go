package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/repo"
)

// ErrSkipDir, returned by a Walk callback for a directory, skips the
// directory's children. For any other node it is ignored.
var ErrSkipDir = errors.New("skip this directory")

// ErrPathNotFound is returned (wrapped) by FindNode for a path that is not
// in the snapshot.
var ErrPathNotFound = errors.New("path not found in snapshot")

// Walk visits every node below tree root depth-first in name order, calling
// fn with the node's slash path ("/tmp/x/file") and the node. Trees come
// from loader, so callers share its cache, and are read ahead of the walk
// (see ReadAhead); fn must not modify nodes. An error from fn (other than
// ErrSkipDir) or from loading a tree ends the walk.
func Walk(ctx context.Context, loader *TreeLoader, root repo.ID, fn func(path string, node *Node) error) error {
	return walk(ctx, &walker{fn: fn}, loader, root)
}

func walk(ctx context.Context, w *walker, loader *TreeLoader, root repo.ID) error {
	w.ra = loader.ReadAhead(ctx, EveryDir)
	defer w.ra.Close()
	return w.tree(ctx, root, "/")
}

// DamagedFunc is told about an item a browsing walk cannot use: a
// directory (path p) whose tree cannot be loaded or decoded, or an entry
// whose name cannot be a file name or repeats in its directory (p is then
// the directory, err names the entry). Returning nil goes on without the
// item; an error ends the walk with it.
type DamagedFunc func(p string, err error) error

// ErrBadName is wrapped by the errors WalkDamaged reports for entries
// whose name is empty, ".", "..", holds "/" or NUL, or repeats.
var ErrBadName = errors.New("unusable name")

// WalkDamaged is Walk for the browse commands: a tree that cannot be loaded
// or decoded, and an entry with an unusable or repeated name, are reported
// through damaged and skipped, and the walk goes on with the rest.
// Cancellation still ends the walk.
func WalkDamaged(ctx context.Context, loader *TreeLoader, root repo.ID, fn func(path string, node *Node) error, damaged DamagedFunc) error {
	return walk(ctx, &walker{fn: fn, damaged: damaged}, loader, root)
}

type walker struct {
	ra      *ReadAhead
	fn      func(string, *Node) error
	damaged DamagedFunc // nil: the first damaged tree ends the walk
}

// loadTree loads the tree of directory dir; ok is false when it was
// reported as damaged and is to be skipped.
func (w *walker) loadTree(ctx context.Context, id repo.ID, dir string) (t *Tree, ok bool, err error) {
	t, err = w.ra.Tree(ctx, dir, id)
	if err == nil {
		return t, true, nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return nil, false, cerr
	}
	if w.damaged == nil {
		return nil, false, fmt.Errorf("walk %s: %w", dir, err)
	}
	return nil, false, w.damaged(dir, err)
}

func (w *walker) tree(ctx context.Context, id repo.ID, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, ok, err := w.loadTree(ctx, id, dir)
	if !ok {
		return err
	}
	nodes := SortedNodes(t)
	for i, n := range nodes {
		if w.damaged != nil {
			if msg := NameProblem(nodes, i); msg != "" {
				if err := w.damaged(dir, BadEntry(n.Name, msg)); err != nil {
					return err
				}
				continue
			}
		}
		p := JoinPath(dir, n.Name)
		err := w.fn(p, n)
		if errors.Is(err, ErrSkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if n.Type != NodeDir {
			continue
		}
		if n.Subtree == nil {
			err := errors.New("directory node has no subtree")
			if w.damaged == nil {
				return fmt.Errorf("walk %s: %w", p, err)
			}
			if err := w.damaged(p, err); err != nil {
				return err
			}
			continue
		}
		if err := w.tree(ctx, *n.Subtree, p); err != nil {
			return err
		}
	}
	return nil
}

// BadEntry is the error for a directory entry that cannot be shown, saying
// why (msg); it wraps ErrBadName.
func BadEntry(name, msg string) error {
	return fmt.Errorf("entry %q: %w: %s", name, ErrBadName, msg)
}

// NameProblem says why nodes[i] (sorted by name) cannot be shown as a
// directory entry, or "" if it can. Of repeated names only the first is
// used: a second one could be anything (a symlink over the directory
// just listed), and no file system holds both.
func NameProblem(nodes []*Node, i int) string {
	name := nodes[i].Name
	switch {
	case name == "" || name == "." || name == "..":
		return "not a file name"
	case strings.ContainsAny(name, "/\x00"):
		return "holds \"/\" or NUL"
	case i > 0 && nodes[i-1].Name == name:
		return "repeats an earlier entry of the directory"
	}
	return ""
}

// SortedNodes returns t's nodes in name order. restic writes trees sorted,
// so this copies only for foreign, unsorted trees (cached trees are shared
// and must not be reordered in place).
func SortedNodes(t *Tree) []*Node {
	cmp := func(a, b *Node) int { return strings.Compare(a.Name, b.Name) }
	if slices.IsSortedFunc(t.Nodes, cmp) {
		return t.Nodes
	}
	nodes := slices.Clone(t.Nodes)
	slices.SortStableFunc(nodes, cmp) // of repeated names, the first stays first
	return nodes
}

// FindNode resolves a slash path inside the snapshot tree root to its node.
// "/" (or "") yields a synthetic directory node whose Subtree is root.
func FindNode(ctx context.Context, loader *TreeLoader, root repo.ID, p string) (*Node, error) {
	clean := path.Clean("/" + p)
	if clean == "/" {
		id := root
		return &Node{Name: "/", Type: NodeDir, Mode: os.ModeDir | 0o755, Subtree: &id}, nil
	}
	cur := root
	comps := strings.Split(clean[1:], "/")
	for i, c := range comps {
		t, err := loader.Tree(ctx, cur)
		if err != nil {
			return nil, fmt.Errorf("find %s: %w", clean, err)
		}
		n := findNode(t, c)
		if n == nil {
			return nil, fmt.Errorf("%w: %s (no %q in %s)", ErrPathNotFound, clean, c, "/"+strings.Join(comps[:i], "/"))
		}
		if i == len(comps)-1 {
			return n, nil
		}
		if n.Type != NodeDir || n.Subtree == nil {
			return nil, fmt.Errorf("%w: %s (%s is a %s, not a directory)", ErrPathNotFound, clean, "/"+strings.Join(comps[:i+1], "/"), n.Type)
		}
		cur = *n.Subtree
	}
	panic("unreachable")
}

// findNode is Tree.Find with a linear fallback for unsorted trees. Of
// repeated names it finds the first, as WalkDamaged shows it.
func findNode(t *Tree, name string) *Node {
	if n := t.Find(name); n != nil {
		return n
	}
	for _, n := range t.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// JoinPath appends a name to a snapshot path without cleaning it, so that
// errors about bad names show them as they are.
func JoinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}
