package checker

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

func TestUsedBlobs(t *testing.T) {
	ctx := context.Background()
	b := chkNewRepo(t, 2)
	b.clean()
	// A blob no snapshot references.
	orphan := b.file("orphan", b.random(100<<10))
	must(t, b.r.Flush(ctx))

	sns, err := snapshot.LoadAllSnapshots(ctx, b.r)
	must(t, err)
	if len(sns) != 2 {
		t.Fatalf("%d snapshots", len(sns))
	}
	loader := snapshot.NewTreeLoader(b.r, 16)
	visited := 0
	used, err := UsedBlobs(ctx, loader, sns, func() { visited++ })
	must(t, err)

	// What the walker reaches, independently.
	want := map[repo.BlobHandle]struct{}{}
	for _, sn := range sns {
		want[repo.BlobHandle{ID: *sn.Tree, Type: repo.TreeBlob}] = struct{}{}
		must(t, snapshot.Walk(ctx, loader, *sn.Tree, func(_ string, n *snapshot.Node) error {
			for _, id := range n.Content {
				want[repo.BlobHandle{ID: id, Type: repo.DataBlob}] = struct{}{}
			}
			if n.Subtree != nil {
				want[repo.BlobHandle{ID: *n.Subtree, Type: repo.TreeBlob}] = struct{}{}
			}
			return nil
		}))
	}
	if len(used) != len(want) {
		t.Errorf("%d used blobs, want %d", len(used), len(want))
	}
	trees := 0
	for h := range want {
		if _, ok := used[h]; !ok {
			t.Errorf("used blobs lack %v", h)
		}
		if h.Type == repo.TreeBlob {
			trees++
		}
	}
	if visited != trees {
		t.Errorf("progress counted %d trees, want %d (each shared tree once)", visited, trees)
	}
	for _, id := range orphan.Content {
		if _, ok := used[repo.BlobHandle{ID: id, Type: repo.DataBlob}]; ok {
			t.Errorf("unreferenced blob %s counted as used", id.Str())
		}
	}
}

func TestUsedBlobsUnreadableTree(t *testing.T) {
	ctx := context.Background()
	b := chkNewRepo(t, 2)
	missing := repo.Hash([]byte("no such tree"))
	dir := b.subdir("data", b.file("a", []byte("a")),
		&snapshot.Node{Name: "gone", Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, Subtree: &missing})
	snID := b.snapshot(b.subdir("", dir))
	sns, err := snapshot.LoadAllSnapshots(ctx, b.r)
	must(t, err)
	_, err = UsedBlobs(ctx, snapshot.NewTreeLoader(b.r, 16), sns, nil)
	if err == nil || !errors.Is(err, repo.ErrBlobNotFound) {
		t.Fatalf("missing tree: err = %v, want ErrBlobNotFound", err)
	}
	for _, part := range []string{snID.Str(), "/data/gone", missing.Str()} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not name %q", err, part)
		}
	}

	// A snapshot whose root tree is missing, next to a good one.
	b2 := chkNewRepo(t, 2)
	b2.clean()
	_, err = snapshot.SaveSnapshot(ctx, b2.r, &snapshot.Snapshot{Time: time.Now(), Tree: &missing, Paths: []string{"/x"}})
	must(t, err)
	sns, err = snapshot.LoadAllSnapshots(ctx, b2.r)
	must(t, err)
	if _, err := UsedBlobs(ctx, snapshot.NewTreeLoader(b2.r, 16), sns, nil); err == nil {
		t.Fatal("missing root tree: no error")
	}

	// An unreadable snapshot file fails LoadAllSnapshots.
	id, err := b2.r.SaveUnpacked(ctx, repo.SnapshotFile, []byte("{not json"))
	must(t, err)
	if _, err := snapshot.LoadAllSnapshots(ctx, b2.r); err == nil || !strings.Contains(err.Error(), id.Str()) {
		t.Fatalf("unreadable snapshot: err = %v", err)
	}
}
