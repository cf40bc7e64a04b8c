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
