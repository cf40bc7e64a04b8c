package cache

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
)

var testOpts = repo.Options{KDF: crypto.KDFParams{N: 1024, R: 8, P: 1}}

// TestRepositoryTreePacks: through a Repository, a pack of tree blobs is
// written through to the cache, a later process reads its trees without
// fetching a pack, and a cached pack damaged after it was verified is
// evicted and the blob read from the backend.
func TestRepositoryTreePacks(t *testing.T) {
	ctx := context.Background()
	be, dir := newLocal(t), t.TempDir()
	w := &warnings{}
	c := Wrap(be, Options{Dir: dir, Warn: w.add})
	r, err := repo.Init(ctx, c, "pw", 2, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	c.Attach(r.Config().ID)
	tree := []byte(`{"nodes":[]}` + strings.Repeat(" ", 1000))
	data := bytes.Repeat([]byte("file content "), 1000)
	for _, b := range []struct {
		t repo.BlobType
		d []byte
	}{{repo.TreeBlob, tree}, {repo.DataBlob, data}} {
		if _, _, _, err := r.SaveBlob(ctx, b.t, b.d, repo.ID{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	treeID := repo.Hash(tree)
	treePack := r.LookupBlob(repo.TreeBlob, treeID)[0].Pack
	dataPack := r.LookupBlob(repo.DataBlob, repo.Hash(data))[0].Pack
	cached := filepath.Join(c.Dir(), "data", treePack.String())
	if _, err := os.Stat(cached); err != nil {
		t.Fatalf("the new tree pack was not written through: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir(), "data", dataPack.String())); err == nil {
		t.Fatal("the data pack was cached")
	}

	// A later process.
	c2 := Wrap(be, Options{Dir: dir, Warn: w.add})
	r2, err := repo.Open(ctx, c2, "pw", testOpts)
	if err != nil {
		t.Fatal(err)
	}
	c2.Attach(r2.Config().ID)
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	be.packLoads.Store(0)
	got, err := r2.LoadBlob(ctx, repo.TreeBlob, treeID, nil)
	if err != nil || !bytes.Equal(got, tree) {
		t.Fatalf("load tree: %v", err)
	}
	if n := be.packLoads.Load(); n != 0 {
		t.Fatalf("%d pack loads reached the backend for a cached tree", n)
	}
	// Damaged after verification: the blob's MAC fails, the copy goes.
	raw, _ := os.ReadFile(cached)
	for i := range raw {
		raw[i] ^= 0xff
	}
	if err := os.WriteFile(cached, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = r2.LoadBlob(ctx, repo.TreeBlob, treeID, nil)
	if err != nil || !bytes.Equal(got, tree) {
		t.Fatalf("load tree from a damaged cached pack: %v", err)
	}
	if !strings.Contains(w.String(), "failed to decode") {
		t.Fatalf("no warning about the evicted pack: %q", w)
	}
	// The next load fetches the pack again into the cache.
	if _, err := r2.LoadBlob(ctx, repo.TreeBlob, treeID, nil); err != nil {
		t.Fatal(err)
	}
	if exists, ok := verifyFile(cached, treePack.String()); !exists || !ok {
		t.Fatalf("the pack was not cached again (exists %v, verified %v)", exists, ok)
	}
}
