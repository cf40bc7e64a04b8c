package snapshot_test

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/internal/snaptest"
	"github.com/cairn-backup/cairn/tests/testutil"
)

func TestWalkAndFindNode(t *testing.T) {
	src := t.TempDir()
	opt := testutil.DefaultGenOptions(21)
	opt.SmallFiles, opt.LargeFiles = 60, nil
	testutil.GenTree(t, src, opt)
	r, _ := snaptest.NewRepo(t, 2, 1<<20)
	sn := snaptest.Backup(t, r, src)
	ctx := context.Background()
	loader := snapshot.NewTreeLoader(r, 64)

	// What the walk must produce: the components leading to src, then
	// src's tree in depth-first name order (WalkDir's order too).
	var want []string
	for d := src; d != "/"; d = filepath.Dir(d) {
		want = append([]string{d}, want...)
	}
	snaptest.Must(t, filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if p != src {
			want = append(want, p)
		}
		return err
	}))
	var got []string
	types := map[string]snapshot.NodeType{}
	snaptest.Must(t, snapshot.Walk(ctx, loader, *sn.Tree, func(p string, n *snapshot.Node) error {
		got = append(got, p)
		types[p] = n.Type
		if filepath.Base(p) != n.Name {
			t.Errorf("path %s for node %q", p, n.Name)
		}
		return nil
	}))
	if !slices.Equal(got, want) {
		t.Fatalf("walk visited %d paths, want %d\n got %q\nwant %q", len(got), len(want), got, want)
	}
	if types[src+"/link-dangling"] != snapshot.NodeSymlink || types[src+"/deep-1"] != snapshot.NodeDir {
		t.Errorf("node types: %v %v", types[src+"/link-dangling"], types[src+"/deep-1"])
	}

	// ErrSkipDir skips a directory's children but not the directory, and
	// is ignored for files.
	skipped := src + "/deep-1"
	got = got[:0]
	snaptest.Must(t, snapshot.Walk(ctx, loader, *sn.Tree, func(p string, n *snapshot.Node) error {
		got = append(got, p)
		if p == skipped || n.Type == snapshot.NodeFile {
			return snapshot.ErrSkipDir
		}
		return nil
	}))
	var wantSkip []string
	for _, p := range want {
		if !strings.HasPrefix(p, skipped+"/") {
			wantSkip = append(wantSkip, p)
		}
	}
	if !slices.Equal(got, wantSkip) {
		t.Errorf("walk with skip: %d paths, want %d", len(got), len(wantSkip))
	}

	// Other errors end the walk and come back unchanged.
	stop := errors.New("stop")
	calls := 0
	err := snapshot.Walk(ctx, loader, *sn.Tree, func(p string, n *snapshot.Node) error {
		calls++
		if calls == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 5 {
		t.Errorf("walk error: %v after %d calls", err, calls)
	}

	root, err := snapshot.FindNode(ctx, loader, *sn.Tree, "/")
	snaptest.Must(t, err)
	if root.Type != snapshot.NodeDir || root.Subtree == nil || *root.Subtree != *sn.Tree {
		t.Errorf("root node %+v", root)
	}
	for _, p := range []string{src + "/deep-1/deep-2", src + "/link-rel", src + "//deep-1/", src[1:] + "/" + testutil.UnicodeName} {
		n, err := snapshot.FindNode(ctx, loader, *sn.Tree, p)
		if err != nil {
			t.Errorf("FindNode(%q): %v", p, err)
			continue
		}
		if n.Name != filepath.Base(filepath.Clean("/"+p)) {
			t.Errorf("FindNode(%q) = %q", p, n.Name)
		}
	}
	for _, p := range []string{src + "/nope", src + "/link-target.txt/below", "/nowhere", src + "/deep-1/deep-2/x"} {
		if _, err := snapshot.FindNode(ctx, loader, *sn.Tree, p); !errors.Is(err, snapshot.ErrPathNotFound) {
			t.Errorf("FindNode(%q): %v, want ErrPathNotFound", p, err)
		}
	}
}
