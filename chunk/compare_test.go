package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/restic/chunker"
)

// testPol is the polynomial of restic/chunker's own tests and examples.
const testPol = Pol(0x3DA3358B4DC173)

// testPolynomials are restic's test polynomial and three irreducible ones
// derived from fixed seeds (as restic derives a new repository's).
var testPolynomials = sync.OnceValue(func() []Pol {
	pols := []Pol{testPol}
	for i := range 3 {
		p, err := chunker.DerivePolynomial(rand.NewChaCha8([32]byte{byte(i), 'p'}))
		if err != nil {
			panic(err)
		}
		pols = append(pols, p)
	}
	return pols
})

// sizes describe a chunker: restic's defaults or small ones for many cuts.
type sizes struct {
	min, max int
	bits     int
}

var defaultSizes = sizes{MinSize, MaxSize, 20}

// resticChunks cuts data with restic/chunker, the reference.
func resticChunks(t testing.TB, data []byte, pol Pol, sz sizes) [][]byte {
	t.Helper()
	c := chunker.NewWithBoundaries(bytes.NewReader(data), pol, uint(sz.min), uint(sz.max))
	c.SetAverageBits(sz.bits)
	var out [][]byte
	var start uint
	for {
		ch, err := c.Next(nil)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if ch.Start != start || ch.Length != uint(len(ch.Data)) {
			t.Fatalf("restic chunk at %d: start %d length %d data %d", start, ch.Start, ch.Length, len(ch.Data))
		}
		start += ch.Length
		out = append(out, ch.Data)
	}
}

// ourChunks cuts rd with a Chunker, each chunk into a fresh copy of buf.
func ourChunks(t testing.TB, rd io.Reader, pol Pol, sz sizes, buf []byte) ([][]byte, error) {
	t.Helper()
	c := newSized(rd, pol, sz.min, sz.max, 1<<sz.bits-1)
	var out [][]byte
	for {
		ch, err := c.Next(buf)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if len(ch) > 0 && len(buf) > 0 && len(ch) <= cap(buf) && &ch[0] != &buf[:1][0] {
			t.Fatalf("a chunk of %d bytes is not in the %d-byte buffer", len(ch), cap(buf))
		}
		out = append(out, bytes.Clone(ch))
	}
}

// sameChunks fails unless got and want are the same chunks (offsets,
// lengths and bytes).
func sameChunks(t testing.TB, what string, got, want [][]byte) {
	t.Helper()
	off := 0
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) {
			t.Fatalf("%s: %d chunks, restic cuts %d (first difference at offset %d)", what, len(got), len(want), off)
		}
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s: chunk %d at offset %d is %d bytes, restic's %d", what, i, off, len(got[i]), len(want[i]))
		}
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: chunk %d at offset %d has other bytes than restic's", what, i, off)
		}
		off += len(got[i])
	}
}

func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// testInputs are the streams every polynomial is checked on.
func testInputs(long bool) map[string][]byte {
	in := map[string][]byte{
		"empty":       {},
		"one byte":    {42},
		"MinSize-1":   randomBytes(MinSize-1, 1),
		"MinSize":     randomBytes(MinSize, 2),
		"MinSize+1":   randomBytes(MinSize+1, 3),
		"MaxSize+1":   randomBytes(MaxSize+1, 4),
		"12 MiB":      randomBytes(12<<20+12345, 5),
		"zeros 20MiB": make([]byte, 20<<20),
	}
	// Zero runs between random stretches: cuts right at MinSize in a run.
	var z []byte
	for i := range 6 {
		z = append(z, randomBytes(700<<10+i*333333, byte(10+i))...)
		z = append(z, make([]byte, (i+1)<<20+i)...)
	}
	in["zero runs"] = z
	// A short random block repeated has few distinct windows; this one
	// has none that cuts, so every chunk is MaxSize.
	rep := bytes.Repeat(randomBytes(4093, 7), (3*MaxSize)/4093+100)
	in["hits MaxSize"] = rep
	if long {
		in["50 MiB"] = randomBytes(50<<20+777, 8)
	}
	return in
}

func TestSameCutsAsRestic(t *testing.T) {
	inputs := testInputs(!testing.Short())
	buf := make([]byte, MaxSize)
	for _, pol := range testPolynomials() {
		for name, data := range inputs {
			want := resticChunks(t, data, pol, defaultSizes)
			got, err := ourChunks(t, bytes.NewReader(data), pol, defaultSizes, buf)
			if err != nil {
				t.Fatal(err)
			}
			sameChunks(t, fmt.Sprintf("%s, polynomial %v", name, pol), got, want)
			if name == "hits MaxSize" && (len(got) < 3 || len(got[0]) != MaxSize) {
				t.Fatalf("%s: first chunk %d bytes of %d chunks; the input should hit MaxSize", name, len(got[0]), len(got))
			}
			if name == "50 MiB" && len(got) < 20 {
				t.Fatalf("%s: only %d chunks", name, len(got))
			}
		}
	}
}

// TestSameCutsAsResticAnyReads: cut points do not depend on how the reader
// splits its data or on the buffer passed to Next.
func TestSameCutsAsResticAnyReads(t *testing.T) {
	data := testInputs(false)["zero runs"]
	data = append(data, randomBytes(5<<20, 20)...)
	want := resticChunks(t, data, testPol, defaultSizes)
	for name, mk := range map[string]func() io.Reader{
		"short reads": func() io.Reader { return &choppyReader{data: data, rng: rand.New(rand.NewPCG(1, 1)), max: 300 << 10} },
		"tiny reads":  func() io.Reader { return &choppyReader{data: data, rng: rand.New(rand.NewPCG(2, 2)), max: 3000} },
		"data with io.EOF": func() io.Reader {
			return &choppyReader{data: data, rng: rand.New(rand.NewPCG(3, 3)), max: 1 << 20, eofWithData: true}
		},
	} {
		for _, buf := range [][]byte{make([]byte, MaxSize), nil, make([]byte, 1000)} {
			got, err := ourChunks(t, mk(), testPol, defaultSizes, buf)
			if err != nil {
				t.Fatal(err)
			}
			sameChunks(t, fmt.Sprintf("%s, buffer of %d", name, len(buf)), got, want)
		}
	}
}

// TestSameCutsAsResticAnyPolynomial: any polynomial restic's chunker
// accepts, irreducible or not, of degree 8 to 53, with small chunks so
// that there are many cuts.
func TestSameCutsAsResticAnyPolynomial(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	data := randomBytes(3<<20, 30)
	data = append(data, make([]byte, 100000)...)
	data = append(data, bytes.Repeat([]byte("abc"), 100000)...)
	for deg := minDegree; deg <= maxDegree; deg++ {
		pol := Pol(1<<deg | rng.Uint64()&(1<<deg-1))
		for _, sz := range []sizes{{65, 4096, 8}, {1000, 20000, 12}, {64 << 10, 512 << 10, 16}} {
			want := resticChunks(t, data, pol, sz)
			got, err := ourChunks(t, &choppyReader{data: data, rng: rng, max: 100000}, pol, sz, make([]byte, sz.max))
			if err != nil {
				t.Fatal(err)
			}
			sameChunks(t, fmt.Sprintf("polynomial %v (degree %d), %+v", pol, deg, sz), got, want)
		}
	}
}

// choppyReader hands out data in reads of random sizes, some empty.
type choppyReader struct {
	data        []byte
	rng         *rand.Rand
	max         int
	eofWithData bool
}

func (r *choppyReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	if r.rng.IntN(10) == 0 {
		return 0, nil
	}
	n := copy(p, r.data[:min(len(r.data), 1+r.rng.IntN(r.max))])
	r.data = r.data[n:]
	if r.eofWithData && len(r.data) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// fuzzReader hands out data in reads whose sizes the fuzzer picks.
type fuzzReader struct {
	data  []byte
	sizes []byte
	k     int
	empty int
}

func (r *fuzzReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if len(r.sizes) > 0 {
		s := r.sizes[r.k%len(r.sizes)]
		r.k++
		if s == 0 && r.empty < 3 {
			r.empty++
			return 0, nil
		}
		n = 1 + int(s)*int(s)*37
	}
	r.empty = 0
	n = copy(p[:min(n, len(p))], r.data)
	r.data = r.data[n:]
	if len(r.data) == 0 && r.k%2 == 0 {
		return n, io.EOF
	}
	return n, nil
}

func FuzzChunker(f *testing.F) {
	f.Add(uint64(1), uint32(1<<20), uint8(0), uint16(100), uint16(5000), uint8(8), []byte{}, []byte{})
	f.Add(uint64(2), uint32(3<<20), uint8(1), uint16(0), uint16(0), uint8(20), []byte{0, 50, 7}, []byte{1, 0, 200})
	f.Add(uint64(3), uint32(200000), uint8(200), uint16(65), uint16(65), uint8(4), []byte("zeros and text"), []byte{0})
	f.Fuzz(func(t *testing.T, seed uint64, size uint32, polSel uint8, minSz, maxSz uint16, bits uint8, runs, reads []byte) {
		rng := rand.New(rand.NewPCG(seed, uint64(polSel)))
		var pol Pol
		switch {
		case polSel < 4:
			pol = testPolynomials()[polSel]
		default: // any polynomial restic accepts
			deg := minDegree + int(polSel)%(maxDegree-minDegree+1)
			pol = Pol(1<<deg | rng.Uint64()&(1<<deg-1))
		}
		sz := sizes{min: 65 + int(minSz)%8000, bits: 1 + int(bits)%20}
		sz.max = sz.min + int(maxSz)%30000
		limit := 256 << 10
		if minSz == 0 && maxSz == 0 { // restic's sizes, a few chunks
			sz, limit = defaultSizes, 12<<20
		}
		data := make([]byte, int(size)%limit)
		var s [32]byte
		s[0], s[1] = byte(seed), byte(seed>>8)
		_, _ = rand.NewChaCha8(s).Read(data)
		// runs: (where, how long, which byte) triples overwrite the data.
		for i := 0; i+2 < len(runs) && len(data) > 0; i += 3 {
			at := int(runs[i]) * len(data) / 256
			n := min(len(data)-at, int(runs[i+1])*int(runs[i+1])*int(runs[i+1]))
			for j := range n {
				data[at+j] = runs[i+2]
			}
		}
		want := resticChunks(t, data, pol, sz)
		got, err := ourChunks(t, &fuzzReader{data: data, sizes: reads}, pol, sz, make([]byte, sz.max))
		if err != nil {
			t.Fatal(err)
		}
		sameChunks(t, fmt.Sprintf("%d bytes, polynomial %v, %+v", len(data), pol, sz), got, want)
	})
}

// TestErrorAfterChunks: the chunks cut before a read error are restic's,
// then the error comes, and again on the next call.
func TestErrorAfterChunks(t *testing.T) {
	data := randomBytes(10<<20, 40)
	want := resticChunks(t, data, testPol, defaultSizes)
	for _, readErr := range []error{io.ErrUnexpectedEOF, errors.New("disk on fire")} {
		failAt := len(want[0]) + len(want[1]) + len(want[2])/2
		rd := io.MultiReader(bytes.NewReader(data[:failAt]), &errReader{readErr})
		c := New(rd, testPol)
		buf := make([]byte, MaxSize)
		for i := range 2 {
			ch, err := c.Next(buf)
			if err != nil || !bytes.Equal(ch, want[i]) {
				t.Fatalf("%v: chunk %d: %d bytes, %v; want restic's %d bytes", readErr, i, len(ch), err, len(want[i]))
			}
		}
		for range 2 {
			if ch, err := c.Next(buf); err != readErr || ch != nil {
				t.Fatalf("got %d bytes, %v; want the reader's error %v", len(ch), err, readErr)
			}
		}
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }
