package checker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/tests/testutil"
)

const chkPassword = "check-password"

// chkReport collects Check's problems and insists on one line each.
type chkReport struct {
	mu            sync.Mutex
	errors, warns []string
}

func (p *chkReport) add(sev Severity, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if msg == "" || strings.Contains(msg, "\n") {
		panic("bad message: " + strconv.Quote(msg))
	}
	if sev == SevError {
		p.errors = append(p.errors, msg)
	} else {
		p.warns = append(p.warns, msg)
	}
}

func (p *chkReport) hasError(parts ...string) bool {
	return slices.ContainsFunc(p.errors, func(m string) bool {
		for _, s := range parts {
			if !strings.Contains(m, s) {
				return false
			}
		}
		return true
	})
}

// chkRun opens dir afresh and checks it.
func chkRun(t *testing.T, dir string, opts CheckOptions) (CheckResult, *chkReport) {
	t.Helper()
	be, err := repo.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), be, chkPassword, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep := &chkReport{}
	res, err := Check(context.Background(), r, opts, rep.add)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != len(rep.errors) || res.Warnings != len(rep.warns) {
		t.Errorf("result counts %d errors, %d warnings; reported %d, %d", res.Errors, res.Warnings, len(rep.errors), len(rep.warns))
	}
	t.Logf("%+v\nerrors: %q\nwarnings: %q", res, rep.errors, rep.warns)
	return res, rep
}

// chkBuilder writes trees and files straight through the repository API
// (the archiver is tested elsewhere; this keeps the fixture independent).
type chkBuilder struct {
	t   *testing.T
	r   *repo.Repository
	dir string
	rng *rand.Rand
}

func chkNewRepo(t *testing.T, version int) *chkBuilder {
	t.Helper()
	dir := t.TempDir()
	be, err := repo.CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, chkPassword, version,
		repo.Options{KDF: crypto.KDFParams{N: 1 << 10, R: 8, P: 1}, PackSize: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return &chkBuilder{t: t, r: r, dir: dir, rng: rand.New(rand.NewPCG(7, uint64(version)))}
}

// file chunks data into blobs and returns its node.
func (b *chkBuilder) file(name string, data []byte) *snapshot.Node {
	ctx := context.Background()
	n := &snapshot.Node{Name: name, Type: snapshot.NodeFile, Mode: 0o644, ModTime: time.Unix(1700000000, 0), Size: uint64(len(data)), Content: []repo.ID{}}
	c := chunk.New(bytes.NewReader(data), b.r.Config().ChunkerPolynomial)
	buf := make([]byte, chunk.MaxSize)
	for {
		ch, err := c.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			b.t.Fatal(err)
		}
		id, _, _, err := b.r.SaveBlob(ctx, repo.DataBlob, ch, repo.ID{})
		if err != nil {
			b.t.Fatal(err)
		}
		n.Content = append(n.Content, id)
	}
	return n
}

func (b *chkBuilder) random(size int) []byte {
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(b.rng.Uint32())
	}
	return buf
}

// subdir saves a tree of nodes and returns a directory node for it.
func (b *chkBuilder) subdir(name string, nodes ...*snapshot.Node) *snapshot.Node {
	t := &snapshot.Tree{Nodes: nodes}
	t.Sort()
	id, err := snapshot.SaveTree(context.Background(), b.r, t)
	if err != nil {
		b.t.Fatal(err)
	}
	return &snapshot.Node{Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, ModTime: time.Unix(1700000000, 0), Subtree: &id}
}

// snapshot flushes and saves a snapshot of root's subtree.
func (b *chkBuilder) snapshot(root *snapshot.Node) repo.ID {
	ctx := context.Background()
	if err := b.r.Flush(ctx); err != nil {
		b.t.Fatal(err)
	}
	id, err := snapshot.SaveSnapshot(ctx, b.r, &snapshot.Snapshot{Time: time.Now(), Tree: root.Subtree, Paths: []string{"/data"}, Hostname: "test"})
	if err != nil {
		b.t.Fatal(err)
	}
	return id
}

// clean writes two snapshots sharing most trees: several packs of each kind,
// compressible and random data, empty files, symlinks, nesting.
func (b *chkBuilder) clean() {
	text := bytes.Repeat([]byte("cairn checks repositories. "), 40000)
	sub := b.subdir("sub", b.file("big.bin", b.random(2<<20)), b.file("text.txt", text),
		&snapshot.Node{Name: "link", Type: snapshot.NodeSymlink, LinkTarget: "../x", Mode: os.ModeSymlink | 0o777})
	data := b.subdir("data", sub, b.file("empty", nil), b.file("small", []byte("hello")), b.subdir("emptydir"))
	b.snapshot(b.subdir("", data))
	data2 := b.subdir("data", sub, b.file("new.bin", b.random(300<<10)))
	b.snapshot(b.subdir("", data2))
}

func TestCheckClean(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run("v"+strconv.Itoa(version), func(t *testing.T) {
			b := chkNewRepo(t, version)
			b.clean()
			res, rep := chkRun(t, b.dir, CheckOptions{})
			if res.Errors+res.Warnings != 0 || len(rep.errors)+len(rep.warns) != 0 {
				t.Fatal("clean repository has problems")
			}
			// 2 roots, 2 "data" trees, sub, emptydir.
			if res.Snapshots != 2 || res.Trees != 6 || res.Packs < 4 || res.Blobs < 8 || res.ReadDataPacks != 0 {
				t.Errorf("counts: %+v", res)
			}
			prog := &snapshot.Progress{}
			res, _ = chkRun(t, b.dir, CheckOptions{ReadData: true, Progress: prog})
			var size int64
			_ = b.r.List(context.Background(), repo.PackFile, func(_ repo.ID, n int64) error { size += n; return nil })
			if res.Errors+res.Warnings != 0 || res.ReadDataPacks != res.Packs || res.ReadDataBytes != size {
				t.Errorf("read data: %+v, pack bytes %d", res, size)
			}
			if prog.Files.Load() != uint64(res.Packs) || prog.TotalFiles.Load() != uint64(res.Packs) ||
				prog.Bytes.Load() != uint64(size) || prog.TotalBytes.Load() != uint64(size) {
				t.Errorf("progress: files %d/%d bytes %d/%d", prog.Files.Load(), prog.TotalFiles.Load(), prog.Bytes.Load(), prog.TotalBytes.Load())
			}
		})
	}
}

// TestCheckFixtureWithRestic makes sure the hand-built fixture is valid in
// restic's eyes too, so "no errors" above means something.
func TestCheckFixtureWithRestic(t *testing.T) {
	b := chkNewRepo(t, 2)
	b.clean()
	if out, err := testutil.RunRestic(t, b.dir, chkPassword, "check", "--read-data"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestCheckResticRepository(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run("v"+strconv.Itoa(version), func(t *testing.T) {
			dir, src := filepath.Join(t.TempDir(), "repo"), t.TempDir()
			opt := testutil.DefaultGenOptions(uint64(version))
			opt.SmallFiles = 60
			opt.LargeFiles = []int64{3 << 20}
			testutil.GenTree(t, src, opt)
			if _, err := testutil.RunRestic(t, dir, chkPassword, "init", "--repository-version", strconv.Itoa(version)); err != nil {
				t.Fatal(err)
			}
			if _, err := testutil.RunRestic(t, dir, chkPassword, "backup", "--host", "test", src); err != nil {
				t.Fatal(err)
			}
			res, rep := chkRun(t, dir, CheckOptions{ReadData: true})
			if len(rep.errors)+len(rep.warns) != 0 {
				t.Fatal("restic's repository has problems")
			}
			if res.Snapshots != 1 || res.Trees < 4 || res.ReadDataPacks != res.Packs || res.Packs < 2 {
				t.Errorf("counts: %+v", res)
			}
		})
	}
}

func TestCheckBrokenTrees(t *testing.T) {
	b := chkNewRepo(t, 2)
	b.clean()
	ctx := context.Background()
	missing := repo.Hash([]byte("not stored"))
	good := b.file("good", []byte("fine"))
	short := b.file("short", []byte("twelve bytes"))
	short.Size = 99
	lost := b.file("lost", []byte("gone"))
	lost.Content = append(lost.Content, missing)
	noSub := &snapshot.Node{Name: "nosub", Type: snapshot.NodeDir}
	missing2 := repo.Hash([]byte("not stored either"))
	ghost := &snapshot.Node{Name: "ghost", Type: snapshot.NodeDir, Subtree: &missing2}
	// The tree encoder gives every file a content list; write this one raw.
	rawID, _, _, err := b.r.SaveBlob(ctx, repo.TreeBlob, []byte(`{"nodes":[{"name":"nocontent","type":"file","size":3,"content":null}]}`+"\n"), repo.ID{})
	if err != nil {
		t.Fatal(err)
	}
	raw := &snapshot.Node{Name: "raw", Type: snapshot.NodeDir, Subtree: &rawID}
	bad := b.snapshot(b.subdir("", b.subdir("data", good, short, lost, noSub, ghost, raw,
		&snapshot.Node{Name: "weird", Type: "socketish"})))
	// A snapshot whose root tree is not stored at all.
	orphan, err := snapshot.SaveSnapshot(ctx, b.r, &snapshot.Snapshot{Time: time.Now(), Tree: &missing, Paths: []string{"/x"}})
	if err != nil {
		t.Fatal(err)
	}
	res, rep := chkRun(t, b.dir, CheckOptions{})
	s, o := bad.Str(), orphan.Str()
	for _, want := range [][]string{
		{"snapshot " + o, "tree " + missing.Str() + " is missing"},
		{"snapshot " + s, "/data/short: file size is 99 bytes, but its data blobs hold 12"},
		{"snapshot " + s, "/data/lost: 1 of 2 data blobs are missing", missing.Str()},
		{"snapshot " + s, "/data/nosub: directory has no subtree"},
		{"snapshot " + s, "/data/ghost: tree " + missing2.Str() + " is missing"},
		{"snapshot " + s, "/data/weird: unknown node type"},
		{"snapshot " + s, "/data/raw/nocontent: file has no content list"},
	} {
		if !rep.hasError(want...) {
			t.Errorf("no error containing %q", want)
		}
	}
	if res.Errors != 7 || res.Warnings != 0 || res.Snapshots != 4 {
		t.Errorf("result: %+v", res)
	}
}

// chkPackOf returns one blob of type typ and thus its pack.
func chkPackOf(t *testing.T, r *repo.Repository, typ repo.BlobType) repo.PackedBlob {
	t.Helper()
	var found repo.PackedBlob
	r.Index().Each(func(pb repo.PackedBlob) bool {
		if pb.Type == typ && (typ == repo.TreeBlob || pb.Length > 1000) {
			found = pb
			return false
		}
		return true
	})
	if found.Pack.IsNull() {
		t.Fatalf("no %v blob", typ)
	}
	return found
}

func chkPackPath(dir string, id repo.ID) string {
	return filepath.Join(dir, "data", id.String()[:2], id.String())
}

func chkFlip(t *testing.T, path string, off int64) {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	buf[off] ^= 0x40
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCheckDamagedPacks(t *testing.T) {
	t.Run("flipped data byte", func(t *testing.T) {
		b := chkNewRepo(t, 2)
		b.clean()
		pb := chkPackOf(t, b.r, repo.DataBlob)
		chkFlip(t, chkPackPath(b.dir, pb.Pack), int64(pb.Offset+pb.Length/2))
		if res, _ := chkRun(t, b.dir, CheckOptions{}); res.Errors != 0 {
			t.Error("a damaged data blob was noticed without reading pack data")
		}
		res, rep := chkRun(t, b.dir, CheckOptions{ReadData: true})
		p := "pack " + pb.Pack.Str()
		if !rep.hasError(p+": content does not match its ID (damaged)") || !rep.hasError(p, "blob "+pb.ID.Str(), "damaged") || res.Errors != 2 {
			t.Errorf("damage not reported as expected: %+v", res)
		}
	})
	t.Run("flipped tree byte", func(t *testing.T) {
		b := chkNewRepo(t, 1)
		b.clean()
		pb := chkPackOf(t, b.r, repo.TreeBlob)
		chkFlip(t, chkPackPath(b.dir, pb.Pack), int64(pb.Offset+pb.Length/2))
		// Trees are read by the snapshot walk even without --read-data.
		res, rep := chkRun(t, b.dir, CheckOptions{})
		if res.Errors == 0 || !rep.hasError("tree "+pb.ID.Str()+" cannot be loaded", pb.Pack.Str()) {
			t.Errorf("damaged tree not reported: %+v", res)
		}
	})
	t.Run("deleted pack", func(t *testing.T) {
		b := chkNewRepo(t, 2)
		b.clean()
		pb := chkPackOf(t, b.r, repo.DataBlob)
		if err := os.Remove(chkPackPath(b.dir, pb.Pack)); err != nil {
			t.Fatal(err)
		}
		res, rep := chkRun(t, b.dir, CheckOptions{ReadData: true})
		if !rep.hasError("pack "+pb.Pack.Str()+" is missing") || res.ReadDataPacks != res.Packs-1 {
			t.Errorf("missing pack not reported: %+v", res)
		}
	})
	t.Run("truncated index", func(t *testing.T) {
		b := chkNewRepo(t, 2)
		b.clean()
		var idx repo.ID
		_ = b.r.List(context.Background(), repo.IndexFile, func(id repo.ID, _ int64) error { idx = id; return nil })
		p := filepath.Join(b.dir, "index", idx.String())
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 100); err != nil {
			t.Fatal(err)
		}
		res, rep := chkRun(t, b.dir, CheckOptions{})
		if !rep.hasError("index file "+idx.Str(), "cairn repair index") || res.Errors < 1 {
			t.Errorf("truncated index not reported: %+v", res)
		}
	})
	t.Run("unused pack", func(t *testing.T) {
		b := chkNewRepo(t, 2)
		b.clean()
		pw := repo.NewPackWriter(repo.DataBlob, 100)
		data := []byte("left behind")
		pw.Add(repo.BlobHandle{ID: repo.Hash(data), Type: repo.DataBlob}, b.r.Key().Seal(nil, data), 0)
		buf, id, _ := pw.Finish(b.r.Key())
		if err := b.r.Backend().Save(context.Background(), repo.Handle{Type: repo.PackFile, Name: id.String()}, bytes.NewReader(buf), int64(len(buf))); err != nil {
			t.Fatal(err)
		}
		res, rep := chkRun(t, b.dir, CheckOptions{ReadData: true})
		if res.Errors != 0 || res.Warnings != 1 || !strings.Contains(rep.warns[0], id.Str()) || res.ReadDataPacks != res.Packs {
			t.Errorf("unused pack: %+v", res)
		}
	})
}

func TestCheckSubsets(t *testing.T) {
	b := chkNewRepo(t, 1)
	b.clean()
	var sum int
	for _, s := range []string{"1/2", "2/2"} {
		res, _ := chkRun(t, b.dir, CheckOptions{ReadDataSubset: s})
		if res.Errors != 0 {
			t.Fatal(res)
		}
		sum += res.ReadDataPacks
	}
	res, _ := chkRun(t, b.dir, CheckOptions{ReadDataSubset: "50%"})
	if sum != res.Packs || res.ReadDataPacks != (res.Packs+1)/2 {
		t.Errorf("1/2 and 2/2 read %d packs, 50%% read %d; repository has %d", sum, res.ReadDataPacks, res.Packs)
	}
	_, err := Check(context.Background(), b.r, CheckOptions{ReadDataSubset: "3/2"}, nil)
	if err == nil || !strings.Contains(err.Error(), "subset") {
		t.Errorf("invalid subset: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Check(ctx, b.r, CheckOptions{ReadData: true}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled check: %v", err)
	}
}

// TestCheckInvalidTrees: each tree with a hostile or duplicate name is one
// error naming the tree and where it was reached; the check goes on to the
// rest (a good sibling's missing blob is still found), and an unsorted but
// otherwise valid tree is only a warning.
func TestCheckInvalidTrees(t *testing.T) {
	b := chkNewRepo(t, 2)
	ctx := context.Background()
	raw := func(nodes ...*snapshot.Node) *repo.ID {
		buf, err := (&snapshot.Tree{Nodes: nodes}).Encode() // Encode keeps the order and does not validate
		if err != nil {
			t.Fatal(err)
		}
		id, _, _, err := b.r.SaveBlob(ctx, repo.TreeBlob, buf, repo.ID{})
		if err != nil {
			t.Fatal(err)
		}
		return &id
	}
	f := func(name string) *snapshot.Node { return b.file(name, []byte("x")) }
	dupID := raw(b.subdir("d", f("in")), &snapshot.Node{Name: "d", Type: snapshot.NodeSymlink, LinkTarget: "/etc"})
	dotID := raw(f(".."))
	slashID := raw(f("a/b"))
	unsortedID := raw(f("z"), f("a"))
	lost := f("lost")
	missing := repo.Hash([]byte("not stored"))
	lost.Content = append(lost.Content, missing)
	dir := func(name string, id *repo.ID) *snapshot.Node {
		return &snapshot.Node{Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, Subtree: id}
	}
	sn := b.snapshot(b.subdir("", b.subdir("data", dir("dup", dupID), dir("dot", dotID), dir("slash", slashID), dir("unsorted", unsortedID), lost)))
	res, rep := chkRun(t, b.dir, CheckOptions{})
	s := sn.Str()
	for _, want := range [][]string{
		{"snapshot " + s, "/data/dup: tree " + dupID.Str() + " is invalid", `duplicate name "d"`},
		{"snapshot " + s, "/data/dot: tree " + dotID.Str() + " is invalid", `name ".."`},
		{"snapshot " + s, "/data/slash: tree " + slashID.Str() + " is invalid", `"a/b"`},
		{"snapshot " + s, "/data/lost: 1 of 2 data blobs are missing"},
	} {
		if !rep.hasError(want...) {
			t.Errorf("no error containing %q", want)
		}
	}
	if res.Errors != 4 || res.Warnings != 1 || !strings.Contains(rep.warns[0], "/data/unsorted: tree "+unsortedID.Str()+": nodes are not sorted") {
		t.Errorf("result: %+v, warnings %q", res, rep.warns)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
