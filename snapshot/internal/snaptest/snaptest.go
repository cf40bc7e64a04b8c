// Package snaptest builds repositories and snapshots for the tests of the
// snapshot packages. Snapshots are stored without the archiver: files are
// chunked and stored blob by blob, trees are built bottom-up with the full
// path structure restic uses, so a test of the walker or the restorer does
// not depend on the code that writes backups.
package snaptest

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// KDF is a cheap key derivation, for fast tests.
var KDF = crypto.KDFParams{N: 1 << 10, R: 8, P: 1}

// Password opens every test repository.
const Password = "test-password"

// NewRepo creates a repository of the given format version and pack size
// in a temporary directory and returns it with its directory.
func NewRepo(t testing.TB, version, packSize int) (*repo.Repository, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := repo.CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, Password, version, repo.Options{KDF: KDF, PackSize: packSize})
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

// OpenRepo opens an existing repository (e.g. one restic wrote) with its index.
func OpenRepo(t testing.TB, dir string) *repo.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := repo.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, Password, repo.Options{KDF: KDF})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

// Backup stores the tree at src as a snapshot whose paths are [abs(src)],
// with one tree level per path component, as restic does.
func Backup(t testing.TB, r *repo.Repository, src string) *snapshot.Snapshot {
	t.Helper()
	ctx := context.Background()
	abs, err := filepath.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	b := &backuper{t: t, r: r, buf: make([]byte, chunk.MaxSize)}
	node := b.save(ctx, abs)
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		tree := &snapshot.Tree{Nodes: []*snapshot.Node{node}}
		id, err := snapshot.SaveTree(ctx, r, tree)
		if err != nil {
			t.Fatal(err)
		}
		if dir == "/" {
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			sn := &snapshot.Snapshot{Time: time.Now(), Tree: &id, Paths: []string{abs}, Hostname: "test"}
			if _, err := snapshot.SaveSnapshot(ctx, r, sn); err != nil {
				t.Fatal(err)
			}
			return sn
		}
		node = b.node(dir)
		node.Subtree = &id
	}
}

type backuper struct {
	t   testing.TB
	r   *repo.Repository
	buf []byte
}

func (b *backuper) node(p string) *snapshot.Node {
	fi, err := os.Lstat(p)
	if err != nil {
		b.t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	n := &snapshot.Node{
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
		n.Type, n.Size = snapshot.NodeFile, uint64(fi.Size())
	case m.IsDir():
		n.Type = snapshot.NodeDir
	case m&os.ModeSymlink != 0:
		n.Type = snapshot.NodeSymlink
		if n.LinkTarget, err = os.Readlink(p); err != nil {
			b.t.Fatal(err)
		}
	case m&os.ModeCharDevice != 0:
		n.Type, n.Device = snapshot.NodeCharDev, st.Rdev
	case m&os.ModeDevice != 0:
		n.Type, n.Device = snapshot.NodeDev, st.Rdev
	case m&os.ModeNamedPipe != 0:
		n.Type = snapshot.NodeFifo
	default:
		n.Type = snapshot.NodeSocket
	}
	return n
}

func (b *backuper) save(ctx context.Context, p string) *snapshot.Node {
	n := b.node(p)
	switch n.Type {
	case snapshot.NodeFile:
		n.Content = b.chunkFile(ctx, p)
	case snapshot.NodeDir:
		ents, err := os.ReadDir(p)
		if err != nil {
			b.t.Fatal(err)
		}
		tree := &snapshot.Tree{}
		for _, e := range ents {
			tree.Nodes = append(tree.Nodes, b.save(ctx, filepath.Join(p, e.Name())))
		}
		tree.Sort()
		id, err := snapshot.SaveTree(ctx, b.r, tree)
		if err != nil {
			b.t.Fatal(err)
		}
		n.Subtree = &id
	}
	return n
}

func (b *backuper) chunkFile(ctx context.Context, p string) []repo.ID {
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

// Must fails the test on a non-nil error.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
