package chunk

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

func TestChunkBoundsAndReassembly(t *testing.T) {
	pol, err := RandomPolynomial()
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 20<<20)
	rnd := rand.NewChaCha8([32]byte{1})
	rnd.Read(data)
	c := New(bytes.NewReader(data), pol)
	var out []byte
	buf := make([]byte, MaxSize)
	n := 0
	for {
		ch, err := c.Next(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(ch) > MaxSize || (len(ch) < MinSize && len(out)+len(ch) != len(data)) {
			t.Fatalf("chunk %d has size %d", n, len(ch))
		}
		out = append(out, ch...)
		n++
	}
	if !bytes.Equal(out, data) {
		t.Fatal("chunks do not reassemble the input")
	}
	if n < 5 || n > 40 {
		t.Fatalf("%d chunks for 20 MiB; expected about 20", n)
	}
	// Same polynomial, shifted input: most chunks are found again (dedup).
	c2 := New(bytes.NewReader(append([]byte("prefix"), data...)), pol)
	seen := map[string]bool{}
	c = New(bytes.NewReader(data), pol)
	for {
		ch, err := c.Next(buf)
		if err != nil {
			break
		}
		seen[string(ch)] = true
	}
	same := 0
	for {
		ch, err := c2.Next(buf)
		if err != nil {
			break
		}
		if seen[string(ch)] {
			same++
		}
	}
	if same < n-2 {
		t.Fatalf("only %d of %d chunks survived a 6-byte insert", same, n)
	}
}

// TestScanLanes: the four-lane scan finds the same first cut (and ends on
// the same fingerprint) as the plain one, wherever the cut falls: in
// any lane, at a lane's last position, in the positions the last lane has
// over the others.
func TestScanLanes(t *testing.T) {
	tab, err := tablesFor(testPol)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 40000)
	rand.NewChaCha8([32]byte{9}).Read(data)
	const mask = 1<<10 - 1
	var hits []int
	for at := 0; ; {
		p, _ := tab.scan1(data[at:], tab.warm(data[at:]), mask)
		if p < 0 {
			break
		}
		hits = append(hits, at+p)
		at += p - windowSize + 1
	}
	if len(hits) < 10 {
		t.Fatalf("only %d cuts in the test data", len(hits))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, start := range []int{0, 1, 2, 3, 1000} {
		ends := []int{start + windowSize, start + windowSize + 1, start + windowSize + 2, len(data)}
		for _, h := range hits {
			ends = append(ends, h, h+1, h+2, h+3)
			// h the last position of lane j: (j+1)·q + windowSize - 1.
			for j := 1; j <= 4; j++ {
				q := (h - start - windowSize + 1) / j
				for extra := range 4 {
					ends = append(ends, start+windowSize+4*q+extra)
				}
			}
		}
		for range 50 {
			ends = append(ends, start+windowSize+rng.IntN(len(data)-start-windowSize))
		}
		for _, end := range ends {
			if end < start+windowSize || end > len(data) {
				continue
			}
			w := data[start:end]
			d := tab.warm(w)
			p1, d1 := tab.scan1(w, d, mask)
			p2, d2 := tab.scan4(w, d, mask)
			p3, d3 := tab.scan(w, d, mask)
			if p1 != p2 || d1 != d2 || p1 != p3 || d1 != d3 {
				t.Fatalf("data[%d:%d]: one lane finds %d (fingerprint %#x), four lanes %d (%#x), rounds %d (%#x)", start, end, p1, d1, p2, d2, p3, d3)
			}
		}
	}
}
