package testutil

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
)

// Crafted writes hand-made snapshots into a new local repository through
// cairn's repo package: trees no real file system produces (duplicate or
// hostile names, unsorted nodes, cycles), for tests of what readers of such
// a repository do. It speaks the tree JSON itself rather than using package
// snapshot, because snapshot's own tests import testutil, and because a
// crafted tree must be stored exactly as given (no sorting, no validation).
type Crafted struct {
	t   testing.TB
	ctx context.Context
	// Repo is the open repository; its index holds everything saved so far
	// once Snapshot (or Flush) has run.
	Repo    *repo.Repository
	RepoDir string
}

// CraftedKDF keeps key derivation fast; cairn accepts it from a key file.
var CraftedKDF = crypto.KDFParams{N: 1 << 10, R: 8, P: 1}

// NewCrafted creates a version 2 repository at dir opened with password.
func NewCrafted(t testing.TB, dir, password string) *Crafted {
	t.Helper()
	ctx := context.Background()
	be, err := repo.CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, password, 2, repo.Options{KDF: CraftedKDF})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &Crafted{t: t, ctx: ctx, Repo: r, RepoDir: dir}
}

// CNode is one tree node in restic's JSON form. Only the fields hostile
// trees need are here; zero values are left out as restic does.
type CNode struct {
	Name       string
	Type       string // file, dir, symlink, dev, chardev, fifo, socket
	Mode       os.FileMode
	ModTime    time.Time
	UID, GID   uint32
	Inode      uint64
	DeviceID   uint64
	Links      uint64
	Size       uint64
	LinkTarget string
	Device     uint64
	Content    []repo.ID
	Subtree    *repo.ID
}

// MarshalJSON writes the name Go-escaped inside the JSON string, as restic
// and cairn do, so names with NUL or control characters survive.
func (n CNode) MarshalJSON() ([]byte, error) {
	q := strconv.Quote(n.Name)
	m := map[string]any{
		"name":  q[1 : len(q)-1],
		"type":  n.Type,
		"mtime": n.ModTime,
		"atime": n.ModTime,
		"ctime": n.ModTime,
		"uid":   n.UID,
		"gid":   n.GID,
	}
	if n.Mode != 0 {
		m["mode"] = n.Mode
	}
	if n.Inode != 0 {
		m["inode"] = n.Inode
		m["device_id"] = n.DeviceID
	}
	if n.Links != 0 {
		m["links"] = n.Links
	}
	if n.Size != 0 {
		m["size"] = n.Size
	}
	if n.LinkTarget != "" {
		m["linktarget"] = n.LinkTarget
	}
	if n.Device != 0 {
		m["device"] = n.Device
	}
	if n.Type == "file" {
		c := n.Content
		if c == nil {
			c = []repo.ID{}
		}
		m["content"] = c
	} else {
		m["content"] = nil
	}
	if n.Subtree != nil {
		m["subtree"] = n.Subtree
	}
	return json.Marshal(m)
}

// craftTime is the mtime of every crafted node: fixed, so trees are stable.
var craftTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// File stores data as one blob and returns a file node for it.
func (c *Crafted) File(name string, data []byte) CNode {
	c.t.Helper()
	n := CNode{Name: name, Type: "file", Mode: 0o644, ModTime: craftTime, Size: uint64(len(data)), Content: []repo.ID{}}
	if len(data) > 0 {
		n.Content = []repo.ID{c.Blob(data)}
	}
	return n
}

// Blob stores one data blob.
func (c *Crafted) Blob(data []byte) repo.ID {
	c.t.Helper()
	id, _, _, err := c.Repo.SaveBlob(c.ctx, repo.DataBlob, data, repo.ID{})
	if err != nil {
		c.t.Fatal(err)
	}
	return id
}

// Dir stores the children as a tree (in the order given) and returns a
// directory node for it.
func (c *Crafted) Dir(name string, children ...CNode) CNode {
	c.t.Helper()
	id := c.Tree(children...)
	return c.DirOf(name, id)
}

// DirOf returns a directory node whose subtree is id (which may be any
// tree, including one that contains this node: a cycle).
func (c *Crafted) DirOf(name string, id repo.ID) CNode {
	return CNode{Name: name, Type: "dir", Mode: os.ModeDir | 0o755, ModTime: craftTime, Subtree: &id}
}

// Symlink returns a symlink node.
func (c *Crafted) Symlink(name, target string) CNode {
	return CNode{Name: name, Type: "symlink", Mode: os.ModeSymlink | 0o777, ModTime: craftTime, LinkTarget: target}
}

// Tree stores the nodes exactly in the order given and returns the tree ID.
func (c *Crafted) Tree(nodes ...CNode) repo.ID {
	c.t.Helper()
	if nodes == nil {
		nodes = []CNode{}
	}
	buf, err := json.Marshal(map[string]any{"nodes": nodes})
	if err != nil {
		c.t.Fatal(err)
	}
	return c.RawTree(append(buf, '\n'))
}

// RawTree stores buf as a tree blob as it is.
func (c *Crafted) RawTree(buf []byte) repo.ID {
	c.t.Helper()
	id, _, _, err := c.Repo.SaveBlob(c.ctx, repo.TreeBlob, buf, repo.ID{})
	if err != nil {
		c.t.Fatal(err)
	}
	return id
}

// Flush writes pending packs and the index.
func (c *Crafted) Flush() {
	c.t.Helper()
	if err := c.Repo.Flush(c.ctx); err != nil {
		c.t.Fatal(err)
	}
}

// Snapshot flushes and saves a snapshot of tree root, returning its ID.
func (c *Crafted) Snapshot(root repo.ID, paths ...string) repo.ID {
	c.t.Helper()
	c.Flush()
	if len(paths) == 0 {
		paths = []string{"/crafted"}
	}
	sn := map[string]any{
		"time":     craftTime,
		"tree":     root,
		"paths":    paths,
		"hostname": "crafted",
		"username": "root",
	}
	id, err := c.Repo.SaveJSONUnpacked(c.ctx, repo.SnapshotFile, sn)
	if err != nil {
		c.t.Fatal(err)
	}
	return id
}

// RewriteIndex loads every index file, lets edit change each blob entry
// (the JSON object of one blob: id, type, offset, length,
// uncompressed_length) and writes the edited index in place of the old.
func (c *Crafted) RewriteIndex(edit func(blob map[string]any)) {
	c.t.Helper()
	var ids []repo.ID
	if err := c.Repo.List(c.ctx, repo.IndexFile, func(id repo.ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		c.t.Fatal(err)
	}
	for _, id := range ids {
		var idx map[string]any
		if err := c.Repo.LoadJSONUnpacked(c.ctx, repo.IndexFile, id, &idx); err != nil {
			c.t.Fatal(err)
		}
		packs, _ := idx["packs"].([]any)
		for _, p := range packs {
			blobs, _ := p.(map[string]any)["blobs"].([]any)
			for _, b := range blobs {
				edit(b.(map[string]any))
			}
		}
		if _, err := c.Repo.SaveJSONUnpacked(c.ctx, repo.IndexFile, idx); err != nil {
			c.t.Fatal(err)
		}
		if err := c.Repo.Backend().Remove(c.ctx, repo.Handle{Type: repo.IndexFile, Name: id.String()}); err != nil {
			c.t.Fatal(err)
		}
	}
}

// AliasBlob adds an index entry for alias that points at where existing is
// stored, as a forged index would (the blob's hash then does not match
// alias). It rewrites the index files like RewriteIndex.
func (c *Crafted) AliasBlob(existing, alias repo.ID) {
	c.t.Helper()
	var entry map[string]any
	c.RewriteIndex(func(b map[string]any) {
		if b["id"] == existing.String() {
			entry = b
		}
	})
	if entry == nil {
		c.t.Fatalf("blob %v is not indexed", existing)
	}
	var ids []repo.ID
	if err := c.Repo.List(c.ctx, repo.IndexFile, func(id repo.ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		c.t.Fatal(err)
	}
	copyEntry := map[string]any{}
	for k, v := range entry {
		copyEntry[k] = v
	}
	copyEntry["id"] = alias.String()
	for _, id := range ids {
		var idx map[string]any
		if err := c.Repo.LoadJSONUnpacked(c.ctx, repo.IndexFile, id, &idx); err != nil {
			c.t.Fatal(err)
		}
		changed := false
		for _, p := range idx["packs"].([]any) {
			pack := p.(map[string]any)
			for _, b := range pack["blobs"].([]any) {
				if b.(map[string]any)["id"] == existing.String() && !changed {
					pack["blobs"] = append(pack["blobs"].([]any), copyEntry)
					changed = true
					break
				}
			}
		}
		if !changed {
			continue
		}
		if _, err := c.Repo.SaveJSONUnpacked(c.ctx, repo.IndexFile, idx); err != nil {
			c.t.Fatal(err)
		}
		if err := c.Repo.Backend().Remove(c.ctx, repo.Handle{Type: repo.IndexFile, Name: id.String()}); err != nil {
			c.t.Fatal(err)
		}
		return
	}
}
