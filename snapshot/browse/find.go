package browse

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// FindOptions say what Find looks for: nodes whose name (or, for a
// pattern with a "/", whose path) matches a glob pattern, or, with BlobIDs
// or TreeIDs, the files that use a data blob and the directories that
// are a tree.
type FindOptions struct {
	// Patterns are path.Match globs. One without "/" is matched against
	// the base name; one with "/" against the full path, or, when it does
	// not start with "/", against any trailing part of the path that
	// starts at a component.
	Patterns   []string
	IgnoreCase bool
	// Oldest and Newest bound the nodes' mtimes (zero: no bound).
	Oldest, Newest time.Time
	// BlobIDs are (prefixes of) data blob IDs; TreeIDs of tree IDs. When
	// either is set, Patterns are not used.
	BlobIDs []string
	TreeIDs []string
	// Damaged, when set, is told about each tree of a snapshot that cannot
	// be loaded or decoded and each unusable entry (see WalkDamaged); the
	// search goes on with the rest. Unset, the first one ends the search.
	Damaged func(sn *snapshot.Snapshot, p string, err error) error
}

// FindMatch is one found node.
type FindMatch struct {
	Path string
	Node *snapshot.Node
	// ID is the blob or tree that matched (ID searches only).
	ID repo.ID
}

// FindResult holds the matches in one snapshot.
type FindResult struct {
	Snapshot *snapshot.Snapshot
	Matches  []FindMatch
}

// idPrefix matches IDs whose hex form starts with a given string.
type idPrefix struct {
	full []byte // whole bytes of the prefix
	half int    // the odd last hex digit, or -1
}

func parseIDPrefix(s string) (idPrefix, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || len(s) > 2*repo.IDSize {
		return idPrefix{}, fmt.Errorf("invalid ID %q: want 1 to %d hex characters", s, 2*repo.IDSize)
	}
	p := idPrefix{half: -1}
	even := s[:len(s)&^1]
	b, err := hex.DecodeString(even)
	if err != nil {
		return idPrefix{}, fmt.Errorf("invalid ID %q: not hexadecimal", s)
	}
	p.full = b
	if len(s)%2 == 1 {
		v, err := hex.DecodeString("0" + s[len(s)-1:])
		if err != nil {
			return idPrefix{}, fmt.Errorf("invalid ID %q: not hexadecimal", s)
		}
		p.half = int(v[0])
	}
	return p, nil
}

func (p idPrefix) match(id repo.ID) bool {
	if !slices.Equal(id[:len(p.full)], p.full) {
		return false
	}
	return p.half < 0 || int(id[len(p.full)]>>4) == p.half
}

type idSet []idPrefix

func (s idSet) match(id repo.ID) bool {
	for _, p := range s {
		if p.match(id) {
			return true
		}
	}
	return false
}

type findPattern struct {
	glob     string
	path     bool // has a "/": matched against the path
	anchored bool
}

// finder is the compiled form of FindOptions.
type finder struct {
	opts     FindOptions
	patterns []findPattern
	blobs    idSet
	trees    idSet
}

func newFinder(opts FindOptions) (*finder, error) {
	f := &finder{opts: opts}
	for _, s := range opts.BlobIDs {
		p, err := parseIDPrefix(s)
		if err != nil {
			return nil, err
		}
		f.blobs = append(f.blobs, p)
	}
	for _, s := range opts.TreeIDs {
		p, err := parseIDPrefix(s)
		if err != nil {
			return nil, err
		}
		f.trees = append(f.trees, p)
	}
	if f.byID() {
		return f, nil
	}
	if len(opts.Patterns) == 0 {
		return nil, errors.New("find: no pattern given")
	}
	for _, p := range opts.Patterns {
		if opts.IgnoreCase {
			p = strings.ToLower(p)
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("invalid pattern %q: %w", p, err)
		}
		fp := findPattern{glob: p, path: strings.Contains(p, "/"), anchored: strings.HasPrefix(p, "/")}
		if fp.anchored {
			fp.glob = path.Clean(p)
		}
		f.patterns = append(f.patterns, fp)
	}
	return f, nil
}

func (f *finder) byID() bool { return len(f.blobs) > 0 || len(f.trees) > 0 }

func (f *finder) inTime(n *snapshot.Node) bool {
	if !f.opts.Oldest.IsZero() && n.ModTime.Before(f.opts.Oldest) {
		return false
	}
	if !f.opts.Newest.IsZero() && n.ModTime.After(f.opts.Newest) {
		return false
	}
	return true
}

// matchName tests the glob patterns against the node at p.
func (f *finder) matchName(p string, n *snapshot.Node) bool {
	name := n.Name
	if f.opts.IgnoreCase {
		name, p = strings.ToLower(name), strings.ToLower(p)
	}
	for _, fp := range f.patterns {
		if !fp.path {
			if ok, _ := path.Match(fp.glob, name); ok {
				return true
			}
			continue
		}
		if fp.anchored {
			if ok, _ := path.Match(fp.glob, p); ok {
				return true
			}
			continue
		}
		// Unanchored: try every suffix that starts at a component.
		for rest := p[1:]; ; {
			if ok, _ := path.Match(fp.glob, rest); ok {
				return true
			}
			i := strings.IndexByte(rest, '/')
			if i < 0 {
				break
			}
			rest = rest[i+1:]
		}
	}
	return false
}

// matchID returns the blob or tree of n that is searched for.
func (f *finder) matchID(n *snapshot.Node) (repo.ID, bool) {
	if len(f.trees) > 0 && n.Subtree != nil && f.trees.match(*n.Subtree) {
		return *n.Subtree, true
	}
	if len(f.blobs) > 0 {
		for _, id := range n.Content {
			if f.blobs.match(id) {
				return id, true
			}
		}
	}
	return repo.ID{}, false
}

// Find searches the snapshots, newest first, and calls fn once for each
// snapshot with matches. For ID searches, directories known to hold no
// match (from an earlier snapshot) are skipped.
func Find(ctx context.Context, loader *snapshot.TreeLoader, sns []*snapshot.Snapshot, opts FindOptions, fn func(*FindResult) error) error {
	f, err := newFinder(opts)
	if err != nil {
		return err
	}
	order := slices.Clone(sns)
	slices.SortStableFunc(order, func(a, b *snapshot.Snapshot) int { return b.Time.Compare(a.Time) })
	empty := map[repo.ID]bool{} // subtrees without any match (ID searches)
	for _, sn := range order {
		res := &FindResult{Snapshot: sn}
		walk := func(root repo.ID, fn func(string, *snapshot.Node) error, onDamaged func()) error {
			if opts.Damaged == nil {
				return snapshot.Walk(ctx, loader, root, fn)
			}
			return snapshot.WalkDamaged(ctx, loader, root, fn, func(p string, err error) error {
				onDamaged()
				return opts.Damaged(sn, p, err)
			})
		}
		if f.byID() {
			err = f.findIDs(sn, res, empty, walk)
		} else {
			err = walk(*sn.Tree, func(p string, n *snapshot.Node) error {
				if f.inTime(n) && f.matchName(p, n) {
					res.Matches = append(res.Matches, FindMatch{Path: p, Node: n})
				}
				return nil
			}, func() {})
		}
		if err != nil {
			return fmt.Errorf("find in snapshot %s: %w", sn.ID.Str(), err)
		}
		if len(res.Matches) > 0 {
			if err := fn(res); err != nil {
				return err
			}
		}
	}
	return nil
}

// walkFunc walks one snapshot's tree; onDamaged runs before a damaged item
// is reported.
type walkFunc func(root repo.ID, fn func(string, *snapshot.Node) error, onDamaged func()) error

// findIDs walks one snapshot for blob and tree IDs. It tracks the open
// directories on a stack so that it learns, when one is left, whether
// anything below it matched; subtrees without matches go into empty.
func (f *finder) findIDs(sn *snapshot.Snapshot, res *FindResult, empty map[repo.ID]bool, walk walkFunc) error {
	root := *sn.Tree
	if len(f.trees) > 0 && f.trees.match(root) {
		id := root
		res.Matches = append(res.Matches, FindMatch{Path: "/", Node: &snapshot.Node{Name: "/", Type: snapshot.NodeDir, Subtree: &id}, ID: root})
	}
	if empty[root] {
		return nil
	}
	type open struct {
		prefix  string // path + "/"
		id      repo.ID
		matched bool
	}
	stack := []open{{prefix: "/", id: root}}
	pop := func(keep func(open) bool) {
		for len(stack) > 0 && !keep(stack[len(stack)-1]) {
			top := stack[len(stack)-1]
			if !top.matched {
				empty[top.id] = true
			}
			stack = stack[:len(stack)-1]
		}
	}
	err := walk(root, func(p string, n *snapshot.Node) error {
		pop(func(o open) bool { return strings.HasPrefix(p, o.prefix) })
		if id, ok := f.matchID(n); ok && f.inTime(n) {
			res.Matches = append(res.Matches, FindMatch{Path: p, Node: n, ID: id})
			for i := range stack {
				stack[i].matched = true
			}
		}
		if n.Type == snapshot.NodeDir && n.Subtree != nil {
			if empty[*n.Subtree] {
				return snapshot.ErrSkipDir
			}
			stack = append(stack, open{prefix: p + "/", id: *n.Subtree})
		}
		return nil
	}, func() {
		// What a damaged item held is unknown: no open directory may be
		// remembered as holding no match.
		for i := range stack {
			stack[i].matched = true
		}
	})
	if err != nil {
		return err
	}
	pop(func(open) bool { return false })
	return nil
}
