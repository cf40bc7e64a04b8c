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
// from loader, so callers share its cache; fn must not modify nodes. An error
// from fn (other than ErrSkipDir) or from loading a tree ends the walk.
func Walk(ctx context.Context, loader *TreeLoader, root repo.ID, fn func(path string, node *Node) error) error {
	return walkTree(ctx, loader, root, "/", fn)
}

func walkTree(ctx context.Context, loader *TreeLoader, id repo.ID, dir string, fn func(string, *Node) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := loader.Tree(ctx, id)
	if err != nil {
		return fmt.Errorf("walk %s: %w", dir, err)
	}
	for _, n := range sortedNodes(t) {
		p := joinSnap(dir, n.Name)
		err := fn(p, n)
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
			return fmt.Errorf("walk %s: directory node has no subtree", p)
		}
		if err := walkTree(ctx, loader, *n.Subtree, p, fn); err != nil {
			return err
		}
	}
	return nil
}

// sortedNodes returns t's nodes in name order. restic writes trees sorted,
// so this copies only for foreign, unsorted trees (cached trees are shared
// and must not be reordered in place).
func sortedNodes(t *Tree) []*Node {
	cmp := func(a, b *Node) int { return strings.Compare(a.Name, b.Name) }
	if slices.IsSortedFunc(t.Nodes, cmp) {
		return t.Nodes
	}
	nodes := slices.Clone(t.Nodes)
	slices.SortFunc(nodes, cmp)
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

// findNode is Tree.Find with a linear fallback for unsorted trees.
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
