package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// crafter writes trees and snapshots no backup would produce straight
// into a test repository, through cairn's own repo and snapshot packages,
// as someone holding the password could.
type crafter struct {
	t *testing.T
	e *testEnv
	r *repo.Repository
}

var craftTime = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func newCrafter(e *testEnv) *crafter {
	e.t.Helper()
	r := e.openRepo()
	return &crafter{t: e.t, e: e, r: r}
}

func (c *crafter) file(name, content string) *snapshot.Node {
	c.t.Helper()
	n := &snapshot.Node{Name: name, Type: snapshot.NodeFile, Mode: 0o644, ModTime: craftTime, Size: uint64(len(content)), Content: []repo.ID{}}
	if content != "" {
		id, _, _, err := c.r.SaveBlob(context.Background(), repo.DataBlob, []byte(content), repo.ID{})
		if err != nil {
			c.t.Fatal(err)
		}
		n.Content = append(n.Content, id)
	}
	return n
}

func (c *crafter) link(name, target string) *snapshot.Node {
	return &snapshot.Node{Name: name, Type: snapshot.NodeSymlink, Mode: os.ModeSymlink | 0o777, ModTime: craftTime, LinkTarget: target}
}

// dir saves nodes as a tree in the given order (not sorted: a crafted
// tree may be in any order) and returns a directory node for it.
func (c *crafter) dir(name string, nodes ...*snapshot.Node) *snapshot.Node {
	c.t.Helper()
	buf, err := (&snapshot.Tree{Nodes: nodes}).Encode()
	if err != nil {
		c.t.Fatal(err)
	}
	return c.rawDir(name, buf)
}

// rawDir is a directory node whose tree blob holds buf (e.g. not JSON).
func (c *crafter) rawDir(name string, buf []byte) *snapshot.Node {
	c.t.Helper()
	id, _, _, err := c.r.SaveBlob(context.Background(), repo.TreeBlob, buf, repo.ID{})
	if err != nil {
		c.t.Fatal(err)
	}
	return &snapshot.Node{Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, ModTime: craftTime, Subtree: &id}
}

// missingDir is a directory node whose tree is in no pack.
func (c *crafter) missingDir(name string) *snapshot.Node {
	id := repo.Hash([]byte("no such tree " + name))
	return &snapshot.Node{Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, ModTime: craftTime, Subtree: &id}
}

// snapshot saves a snapshot whose root tree is root's subtree.
func (c *crafter) snapshot(root *snapshot.Node, when time.Time, tags ...string) string {
	c.t.Helper()
	ctx := context.Background()
	if err := c.r.Flush(ctx); err != nil {
		c.t.Fatal(err)
	}
	sn := &snapshot.Snapshot{Time: when, Tree: root.Subtree, Paths: []string{"/data"}, Hostname: "testhost", Tags: tags}
	id, err := snapshot.SaveSnapshot(ctx, c.r, sn)
	if err != nil {
		c.t.Fatal(err)
	}
	return id.String()
}

// damageSnapshotFile overwrites a snapshot file with bytes that do not
// decrypt.
func damageSnapshotFile(t *testing.T, e *testEnv, id string) {
	t.Helper()
	p := filepath.Join(e.repo, "snapshots", id)
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("this is no longer a snapshot file, but garbage of a damaged disk"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// dirState records the names, modes and contents below dir, to show that a
// command left it alone.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
