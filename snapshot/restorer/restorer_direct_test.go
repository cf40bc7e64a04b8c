package restorer

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sys/unix"
)

// randomPieces returns a maker of random byte slices, the same for a seed.
func randomPieces(seed uint64) func(n int) []byte {
	rnd := rand.New(rand.NewPCG(seed, seed+1))
	return func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rnd.Uint32())
		}
		return p
	}
}

// restoreDirect restores sn into a new target and returns it; it skips the
// test where the file system refuses O_DIRECT.
func restoreDirect(t *testing.T, b *hsBuilder, sn *snapshot.Snapshot, workers int) string {
	t.Helper()
	target := filepath.Join(t.TempDir(), "target")
	var rs0 *restorer
	setHook(t, func(rs *restorer) { rs0 = rs })
	if n, failed := rtRestore(t, b.r, sn, "", RestoreOptions{Target: target, Workers: workers}); n != 0 {
		t.Fatalf("%d failures: %v", n, failed)
	}
	if rs0 != nil && rs0.noDirect.Load() {
		t.Skip("the test directory's file system refuses O_DIRECT")
	}
	return target
}

// blobFile makes a file node from the given pieces, each its own blob
// (saved once however often it repeats), so that blob boundaries fall
// where a test wants them.
func (b *hsBuilder) blobFile(name string, pieces ...[]byte) (*snapshot.Node, []byte) {
	var all []byte
	n := &snapshot.Node{Name: name, Type: snapshot.NodeFile, Mode: 0o644, ModTime: hsTime, Content: []repo.ID{}}
	for _, p := range pieces {
		id, _, _, err := b.r.SaveBlob(context.Background(), repo.DataBlob, p, repo.ID{})
		must(b.t, err)
		n.Content = append(n.Content, id)
		all = append(all, p...)
	}
	n.Size = uint64(len(all))
	return n, all
}

// Blobs that start and end at every kind of place relative to the 4 KiB
// blocks: inside one block, across one boundary, exactly on boundaries,
// all-zero (holes) at the start, middle and end, one blob repeated, and
// partial last blocks. Every file is written with O_DIRECT and must come
// back byte for byte, with its holes.
func TestRestoreDirectBoundaries(t *testing.T) {
	defer func(m int64) { directMinSize = m }(directMinSize)
	directMinSize = 1
	data := randomPieces(1)
	zero := func(n int) []byte { return make([]byte, n) }
	b := hsNew(t)
	rep := data(5000)
	cases := map[string][][]byte{
		"tiny":          {data(1)},
		"one-block":     {data(4096)},
		"block-less-1":  {data(4095)},
		"block-plus-1":  {data(4097)},
		"inside-block":  {data(100), data(200), data(300), data(3496)},
		"across":        {data(3000), data(2000), data(4000), data(1)},
		"aligned":       {data(8192), data(4096), data(12288)},
		"zero-head":     {zero(10000), data(7000)},
		"zero-middle":   {data(5000), zero(20000), data(3000)},
		"zero-tail":     {data(6000), zero(9000)},
		"zero-aligned":  {data(4096), zero(8192)},
		"repeated":      {rep, data(77), rep, rep, data(4019)},
		"many-small":    {data(1000), data(1000), data(1000), data(1000), data(1000), data(1000), data(1000), data(1000), data(1000)},
		"big-irregular": {data(700001), data(523287), zero(1 << 20), data(1048573), data(3)},
	}
	var nodes []*snapshot.Node
	want := map[string][]byte{}
	for name, pieces := range cases {
		n, all := b.blobFile(name, pieces...)
		nodes = append(nodes, n)
		want[name] = all
	}
	sn := b.snapshot(b.dir("d", nodes...))
	target := restoreDirect(t, b, sn, 3)
	for name, all := range want {
		p := filepath.Join(target, "d", name)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, all) {
			t.Errorf("%s: restored %d bytes differ from the %d saved", name, len(got), len(all))
		}
	}
	// The all-zero interior blocks stayed holes.
	var st unix.Stat_t
	must(t, unix.Stat(filepath.Join(target, "d", "big-irregular"), &st))
	if alloc := st.Blocks * 512; alloc > int64(len(want["big-irregular"]))-(1<<20)+2*directBlock {
		t.Errorf("big-irregular: %d bytes allocated for %d with a 1 MiB hole", alloc, len(want["big-irregular"]))
	}
}

// Data written with O_DIRECT did not go through the page cache: a
// restored file's whole blocks are not resident afterwards (buffered, all
// of them would be).
func TestRestoreDirectBypassesCache(t *testing.T) {
	b := hsNew(t)
	piece := randomPieces(3)
	big, _ := b.blobFile("big", piece(1<<20+12345), piece(2<<20-1), piece(700000))
	small, _ := b.blobFile("small", piece(300000))
	sn := b.snapshot(big, small)
	target := restoreDirect(t, b, sn, 2)
	resident := func(name string) (in, all int) {
		f, err := os.Open(filepath.Join(target, name))
		must(t, err)
		defer f.Close()
		fi, _ := f.Stat()
		m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
		must(t, err)
		defer unix.Munmap(m)
		vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			t.Fatal(e)
		}
		for _, v := range vec {
			if v&1 != 0 {
				in++
			}
		}
		return in, len(vec)
	}
	if in, all := resident("big"); in > 4 {
		t.Errorf("big (O_DIRECT): %d of %d pages in the page cache, want at most the few partial blocks", in, all)
	}
	if in, all := resident("small"); in < all/2 {
		t.Errorf("small (page cache): only %d of %d pages resident; is the check blind?", in, all)
	}
}

// A descriptor on which O_DIRECT writes fail with EINVAL (here: an
// unaligned buffer, as a file system without O_DIRECT would answer) drops
// the flag, writes through the page cache, and later files are not tried.
func TestPwriteDirectFallsBack(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_DIRECT, 0o600)
	if err != nil {
		t.Skipf("no O_DIRECT here: %v", err)
	}
	defer unix.Close(fd)
	rs := &restorer{}
	buf := make([]byte, 3*directBlock+1)
	for i := range buf {
		buf[i] = byte(i)
	}
	unaligned := buf[1:]
	if uintptr(len(unaligned))%directBlock != 0 {
		t.Fatal("length")
	}
	if err := rs.pwriteDirect(fd, unaligned, directBlock); err != nil {
		t.Fatalf("pwriteDirect: %v", err)
	}
	if !rs.noDirect.Load() {
		t.Skip("this file system took an unaligned O_DIRECT write")
	}
	fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if fl&unix.O_DIRECT != 0 {
		t.Error("O_DIRECT still set on the descriptor")
	}
	got, err := os.ReadFile(p)
	must(t, err)
	if !bytes.Equal(got[directBlock:], unaligned) || len(got) != 4*directBlock {
		t.Errorf("file holds %d bytes, not the %d written at %d", len(got), len(unaligned), directBlock)
	}
}
