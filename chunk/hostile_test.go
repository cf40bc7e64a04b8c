package chunk

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// funcReader is a reader whose Read does what the test says.
type funcReader func(p []byte) (int, error)

func (f funcReader) Read(p []byte) (int, error) { return f(p) }

// TestHostileReaders: nothing a reader returns makes Next hang or panic;
// the reader's own errors come back as they are, and stay.
func TestHostileReaders(t *testing.T) {
	data := randomBytes(3<<20, 60)
	for _, tc := range []struct {
		name string
		rd   io.Reader
		want error
	}{
		{"nothing, forever", funcReader(func([]byte) (int, error) { return 0, nil }), io.ErrNoProgress},
		{"more than asked", funcReader(func(p []byte) (int, error) { return len(p) + 1, nil }), ErrBadReader},
		{"negative count", funcReader(func([]byte) (int, error) { return -1, nil }), ErrBadReader},
		{"negative count with EOF", funcReader(func([]byte) (int, error) { return -5, io.EOF }), ErrBadReader},
		{"no reader", nil, nil},
		{"unexpected EOF at once", funcReader(func([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }), io.ErrUnexpectedEOF},
		{"unexpected EOF with the data", &lastReader{data: data, err: io.ErrUnexpectedEOF}, io.ErrUnexpectedEOF},
		{"nothing after MinSize", io.MultiReader(bytes.NewReader(data[:MinSize+1000]), funcReader(func([]byte) (int, error) { return 0, nil })), io.ErrNoProgress},
	} {
		c := New(tc.rd, testPol)
		var err error
		for range 10 {
			if _, err = c.Next(make([]byte, MaxSize)); err != nil {
				break
			}
		}
		if err == nil || err == io.EOF || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Fatalf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		if _, again := c.Next(nil); again != err {
			t.Fatalf("%s: the next call says %v, not %v again", tc.name, again, err)
		}
	}
}

// lastReader returns its data in one read, together with err.
type lastReader struct {
	data []byte
	err  error
}

func (r *lastReader) Read(p []byte) (int, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	if len(r.data) == 0 {
		return n, r.err
	}
	return n, nil
}

// TestDataWithError: bytes returned together with an error are chunked
// before the error is passed on.
func TestDataWithError(t *testing.T) {
	data := randomBytes(6<<20, 61)
	want := resticChunks(t, data, testPol, defaultSizes)
	boom := errors.New("boom")
	got, err := ourChunks(t, &lastReader{data: data, err: boom}, testPol, defaultSizes, make([]byte, MaxSize))
	if err != boom {
		t.Fatalf("got %v, want the reader's error", err)
	}
	sameChunks(t, "chunks before the error", got, want[:len(want)-1])
	// With io.EOF instead, the same bytes are the whole stream.
	got, err = ourChunks(t, &lastReader{data: data, err: io.EOF}, testPol, defaultSizes, make([]byte, MaxSize))
	if err != nil {
		t.Fatal(err)
	}
	sameChunks(t, "stream ending with data and io.EOF", got, want)
}

func TestBadPolynomials(t *testing.T) {
	data := randomBytes(MinSize*3, 62)
	for _, pol := range []Pol{0, 1, 0xff, 1 << 54, 1<<63 | 1} {
		c := New(bytes.NewReader(data), pol)
		if _, err := c.Next(nil); err == nil || err == io.EOF {
			t.Fatalf("polynomial %#x: got %v, want an error", uint64(pol), err)
		}
		// A good polynomial after a bad one works.
		c.Reset(bytes.NewReader(data), testPol)
		if ch, err := c.Next(nil); err != nil || len(ch) < MinSize {
			t.Fatalf("after polynomial %#x: %d bytes, %v", uint64(pol), len(ch), err)
		}
	}
	// Degrees 8 and 53, the limits restic's chunker accepts, work.
	for _, pol := range []Pol{0x11b, 1<<53 | 0x1f} {
		if _, err := New(bytes.NewReader(data), pol).Next(nil); err != nil {
			t.Fatalf("polynomial %#x: %v", uint64(pol), err)
		}
	}
}

// TestResetMidStream: what was read ahead of one stream never leaks into
// the next, and the end of a stream stays the end.
func TestResetMidStream(t *testing.T) {
	a, b := randomBytes(5<<20, 63), randomBytes(4<<20, 64)
	want := resticChunks(t, b, testPol, defaultSizes)
	c := New(bytes.NewReader(a), testPol)
	buf := make([]byte, MaxSize)
	if _, err := c.Next(buf); err != nil {
		t.Fatal(err)
	}
	c.Reset(bytes.NewReader(b), testPol)
	var got [][]byte
	for {
		ch, err := c.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, bytes.Clone(ch))
	}
	sameChunks(t, "second stream", got, want)
	for range 3 {
		if ch, err := c.Next(buf); err != io.EOF || ch != nil {
			t.Fatalf("after the end: %d bytes, %v", len(ch), err)
		}
	}
}
