package testutil

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/repo"
)

func TestCraftedRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	c := NewCrafted(t, dir, "pw")
	f := c.File("a\x00b", []byte("hello"))
	root := c.Tree(c.Dir("d", f), c.Symlink("d", "/etc"))
	c.Snapshot(root)
	ctx := context.Background()
	be, err := repo.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, "pw", repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if !r.HasBlob(repo.TreeBlob, root) || !r.HasBlob(repo.DataBlob, f.Content[0]) {
		t.Fatal("crafted blobs not indexed")
	}
	n := 0
	c.RewriteIndex(func(b map[string]any) { n++ })
	if n != 3 {
		t.Fatalf("rewrite saw %d blobs, want 3", n)
	}
}
