package snapshot

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
)

// Helpers for the walker and restorer tests. They build snapshots without
// the archiver: files are chunked and stored blob by blob, trees are built
// bottom-up with the full path structure restic uses.

var rtKDF = crypto.KDFParams{N: 1 << 10, R: 8, P: 1}

const rtPassword = "test-password"

func rtNewRepo(t testing.TB, version, packSize int) (*repo.Repository, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := repo.CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, rtPassword, version, repo.Options{KDF: rtKDF, PackSize: packSize})
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

// rtOpenRepo opens an existing repository (e.g. one restic wrote) with its index.
func rtOpenRepo(t testing.TB, dir string) *repo.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := repo.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, rtPassword, repo.Options{KDF: rtKDF})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

// rtBackup stores the tree at src as a snapshot whose paths are [abs(src)],
// with one tree level per path component, as restic does.
func rtBackup(t testing.TB, r *repo.Repository, src string) *Snapshot {
	t.Helper()
	ctx := context.Background()
	abs, err := filepath.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	b := &rtBackuper{t: t, r: r, buf: make([]byte, chunk.MaxSize)}
	node := b.save(ctx, abs)
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		tree := &Tree{Nodes: []*Node{node}}
		id, err := SaveTree(ctx, r, tree)
		if err != nil {
			t.Fatal(err)
		}
		if dir == "/" {
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			sn := &Snapshot{Time: time.Now(), Tree: &id, Paths: []string{abs}, Hostname: "test"}
			if _, err := SaveSnapshot(ctx, r, sn); err != nil {
				t.Fatal(err)
			}
			return sn
		}
		node = b.node(dir)
		node.Subtree = &id
	}
}

type rtBackuper struct {
	t   testing.TB
	r   *repo.Repository
	buf []byte
}

func (b *rtBackuper) node(p string) *Node {
	fi, err := os.Lstat(p)
	if err != nil {
		b.t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	n := &Node{
		Name:       fi.Name(),
		Mode:       fi.Mode() & (os.ModePerm | os.ModeType | os.ModeSetuid | os.ModeSetgid | os.ModeSticky),
		ModTime:    time.Unix(st.Mtim.Unix()),
		AccessTime: time.Unix(st.Atim.Unix()),
		ChangeTime: time.Unix(st.Ctim.Unix()),
		UID:        st.Uid,
		GID:        st.Gid,
		Inode:      st.Ino,
		DeviceID:   st.Dev,
		Links:      st.Nlink,
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		n.Type, n.Size = NodeFile, uint64(fi.Size())
	case m.IsDir():
		n.Type = NodeDir
	case m&os.ModeSymlink != 0:
		n.Type = NodeSymlink
		if n.LinkTarget, err = os.Readlink(p); err != nil {
			b.t.Fatal(err)
		}
	case m&os.ModeCharDevice != 0:
		n.Type, n.Device = NodeCharDev, st.Rdev
	case m&os.ModeDevice != 0:
		n.Type, n.Device = NodeDev, st.Rdev
	case m&os.ModeNamedPipe != 0:
		n.Type = NodeFifo
	default:
		n.Type = NodeSocket
	}
	return n
}

func (b *rtBackuper) save(ctx context.Context, p string) *Node {
	n := b.node(p)
	switch n.Type {
	case NodeFile:
		n.Content = b.chunkFile(ctx, p)
	case NodeDir:
		ents, err := os.ReadDir(p)
		if err != nil {
			b.t.Fatal(err)
		}
		tree := &Tree{}
		for _, e := range ents {
			tree.Nodes = append(tree.Nodes, b.save(ctx, filepath.Join(p, e.Name())))
		}
		tree.Sort()
		id, err := SaveTree(ctx, b.r, tree)
		if err != nil {
			b.t.Fatal(err)
		}
		n.Subtree = &id
	}
	return n
}

func (b *rtBackuper) chunkFile(ctx context.Context, p string) []repo.ID {
	f, err := os.Open(p)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	ids := []repo.ID{}
	c := chunk.New(f, b.r.Config().ChunkerPolynomial)
	for {
		data, err := c.Next(b.buf)
		if errors.Is(err, io.EOF) {
			return ids
		}
		if err != nil {
			b.t.Fatal(err)
		}
		id, _, _, err := b.r.SaveBlob(ctx, repo.DataBlob, data, repo.ID{})
		if err != nil {
			b.t.Fatal(err)
		}
		ids = append(ids, id)
	}
}

// rtRestore runs Restore and collects the failed paths.
func rtRestore(t testing.TB, r *repo.Repository, sn *Snapshot, subpath string, opts RestoreOptions) (int, map[string]error) {
	t.Helper()
	failed := map[string]error{}
	opts.OnError = func(p string, err error) { failed[p] = err }
	n, err := Restore(context.Background(), r, sn, subpath, opts)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if n != len(failed) {
		t.Errorf("Restore returned %d failures, OnError saw %d: %v", n, len(failed), failed)
	}
	return n, failed
}

// under returns where the full snapshot path p lands below target.
func under(target, p string) string {
	return filepath.Join(target, strings.TrimPrefix(p, "/"))
}
