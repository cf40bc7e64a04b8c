// Package snapshot holds the restic-compatible data types (Node, Tree,
// Snapshot), their encoding, and loading, saving, listing and walking them
// in a repository (TreeLoader, Walk, FindNode). The jobs built on them live
// in sub-packages: archiver writes backups, restorer writes them back to
// disk, browse lists, finds, compares, dumps and reads files, checker
// verifies trees and finds the blobs snapshots use, match holds the
// include/exclude patterns.
package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// NodeType is the "type" field of a tree node.
type NodeType string

const (
	NodeFile      NodeType = "file"
	NodeDir       NodeType = "dir"
	NodeSymlink   NodeType = "symlink"
	NodeDev       NodeType = "dev" // block device
	NodeCharDev   NodeType = "chardev"
	NodeFifo      NodeType = "fifo"
	NodeSocket    NodeType = "socket"
	NodeIrregular NodeType = "irregular"
)

// ExtendedAttribute is one xattr of a node.
type ExtendedAttribute struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// Node is one directory entry, in restic's JSON encoding. Mode holds Go's
// os.FileMode bits (type bits included), as restic writes them.
type Node struct {
	Name               string              `json:"name"`
	Type               NodeType            `json:"type"`
	Mode               os.FileMode         `json:"mode,omitempty"`
	ModTime            time.Time           `json:"mtime"`
	AccessTime         time.Time           `json:"atime"`
	ChangeTime         time.Time           `json:"ctime"`
	UID                uint32              `json:"uid"`
	GID                uint32              `json:"gid"`
	User               string              `json:"user,omitempty"`
	Group              string              `json:"group,omitempty"`
	Inode              uint64              `json:"inode,omitempty"`
	DeviceID           uint64              `json:"device_id,omitempty"`
	Size               uint64              `json:"size,omitempty"`
	Links              uint64              `json:"links,omitempty"`
	LinkTarget         string              `json:"linktarget,omitempty"`
	ExtendedAttributes []ExtendedAttribute `json:"extended_attributes,omitempty"`
	Device             uint64              `json:"device,omitempty"` // rdev of device nodes
	// Content lists the data blobs of a file. restic requires a non-nil list
	// for files (empty files have "[]") and writes null for everything else.
	Content []repo.ID `json:"content"`
	Subtree *repo.ID  `json:"subtree,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// MarshalJSON stores the name Go-escaped (strconv.Quote without the quotes)
// inside the JSON string, as restic does: restic unquotes every name it
// reads and rejects trees whose names hold a bare quote or backslash.
func (n Node) MarshalJSON() ([]byte, error) {
	type plain Node
	q := strconv.Quote(n.Name)
	p := plain(n)
	p.Name = q[1 : len(q)-1]
	return json.Marshal(p)
}

// UnmarshalJSON undoes the escaping of MarshalJSON.
func (n *Node) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, (*plainNode)(n)); err != nil {
		return err
	}
	return n.unquoteName()
}

// plainNode is Node without its JSON methods: DecodeTree decodes a whole
// tree into these in one pass instead of handing each node's bytes to a
// second decoder.
type plainNode Node

func (n *Node) unquoteName() error {
	// JSON decoding leaves valid UTF-8; without a backslash, quote or
	// newline the Go unquoting is the identity (the common case).
	if !strings.ContainsAny(n.Name, "\\\"\n") {
		return nil
	}
	name, err := strconv.Unquote(`"` + n.Name + `"`)
	if err != nil {
		return fmt.Errorf("node name %q: %w", n.Name, err)
	}
	n.Name = name
	return nil
}

// Equal reports whether n and o hold the same entry: every field that is
// encoded is equal (times as instants, nil and empty lists alike). Equal
// nodes encode alike up to time zones, so a tree of nodes equal to another
// tree's is that tree.
func (n *Node) Equal(o *Node) bool {
	if n == o {
		return true
	}
	if n == nil || o == nil {
		return false
	}
	if n.Name != o.Name || n.Type != o.Type || n.Mode != o.Mode ||
		n.UID != o.UID || n.GID != o.GID || n.User != o.User || n.Group != o.Group ||
		n.Inode != o.Inode || n.DeviceID != o.DeviceID || n.Size != o.Size ||
		n.Links != o.Links || n.LinkTarget != o.LinkTarget || n.Device != o.Device ||
		n.Error != o.Error ||
		!n.ModTime.Equal(o.ModTime) || !n.AccessTime.Equal(o.AccessTime) || !n.ChangeTime.Equal(o.ChangeTime) {
		return false
	}
	if (n.Subtree == nil) != (o.Subtree == nil) || (n.Subtree != nil && *n.Subtree != *o.Subtree) {
		return false
	}
	// A file's empty content encodes as [], anything else's as null.
	if (n.Content == nil) != (o.Content == nil) && n.Type != NodeFile {
		return false
	}
	if !slices.Equal(n.Content, o.Content) {
		return false
	}
	return slices.EqualFunc(n.ExtendedAttributes, o.ExtendedAttributes, func(a, b ExtendedAttribute) bool {
		return a.Name == b.Name && bytes.Equal(a.Value, b.Value)
	})
}

// Tree is a directory listing; nodes are sorted by name.
type Tree struct {
	Nodes []*Node `json:"nodes"`
}

// Sort orders the nodes by name, as restic requires.
func (t *Tree) Sort() {
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].Name < t.Nodes[j].Name })
}

// Find returns the node called name, or nil.
func (t *Tree) Find(name string) *Node {
	i := sort.Search(len(t.Nodes), func(i int) bool { return t.Nodes[i].Name >= name })
	if i < len(t.Nodes) && t.Nodes[i].Name == name {
		return t.Nodes[i]
	}
	return nil
}

// Encode returns the blob bytes of t (JSON plus newline). The tree's ID is
// the hash of these bytes.
func (t *Tree) Encode() ([]byte, error) {
	if t.Nodes == nil {
		t.Nodes = []*Node{}
	}
	for _, n := range t.Nodes {
		if n.Type == NodeFile && n.Content == nil {
			n.Content = []repo.ID{}
		}
	}
	buf, err := appendTree(make([]byte, 0, 64+300*len(t.Nodes)), t)
	if err != nil {
		return nil, fmt.Errorf("encode tree: %w", err)
	}
	return append(buf, '\n'), nil
}

// ErrInvalidTree marks a tree blob that decodes but that no file system
// could have produced: a missing, empty, ".", ".." or duplicate name, or a
// name holding "/" or NUL. Readers treat such a tree as damaged: restoring
// it could write outside the target or let one entry replace another.
var ErrInvalidTree = errors.New("invalid tree")

// DecodeTree parses a tree blob and validates its names. Nodes come back
// sorted by name: restic writes them sorted, and Find's binary search would
// hide entries of an unsorted tree. Sorting (rather than rejecting) keeps
// every entry of a tree some other writer left unsorted, which is harmless
// as long as the names are unique. Sorted input costs one pass.
func DecodeTree(buf []byte) (*Tree, error) {
	t, _, err := DecodeTreeReportOrder(buf)
	return t, err
}

// DecodeTreeReportOrder is DecodeTree that also reports whether the nodes were stored
// out of order (check warns about it).
func DecodeTreeReportOrder(buf []byte) (t *Tree, unsorted bool, err error) {
	nodes, err := decodeTreeNodes(buf)
	if err != nil {
		return nil, false, fmt.Errorf("decode tree: %w", err)
	}
	t = &Tree{Nodes: nodes}
	if t.Nodes == nil {
		t.Nodes = []*Node{}
	}
	for i, n := range t.Nodes {
		if n == nil {
			return nil, false, fmt.Errorf("decode tree: %w: node %d is null", ErrInvalidTree, i)
		}
		if err := n.unquoteName(); err != nil {
			return nil, false, fmt.Errorf("decode tree: %w", err)
		}
		if err := CheckName(n.Name); err != nil {
			return nil, false, err
		}
		if i > 0 && !unsorted {
			switch c := strings.Compare(t.Nodes[i-1].Name, n.Name); {
			case c == 0:
				return nil, false, fmt.Errorf("decode tree: %w: duplicate name %q", ErrInvalidTree, n.Name)
			case c > 0:
				unsorted = true
			}
		}
	}
	if unsorted {
		t.Sort()
		for i := 1; i < len(t.Nodes); i++ {
			if t.Nodes[i-1].Name == t.Nodes[i].Name {
				return nil, true, fmt.Errorf("decode tree: %w: duplicate name %q", ErrInvalidTree, t.Nodes[i].Name)
			}
		}
	}
	return t, unsorted, nil
}

// CheckName rejects names that are not one path component.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("decode tree: %w: empty name", ErrInvalidTree)
	case name == "." || name == "..":
		return fmt.Errorf("decode tree: %w: name %q", ErrInvalidTree, name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("decode tree: %w: name %q holds a slash or NUL", ErrInvalidTree, name)
	}
	return nil
}
