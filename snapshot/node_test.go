package snapshot

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeTreeValidation(t *testing.T) {
	node := func(name string) string {
		return `{"name":"` + name + `","type":"file","mtime":"2024-01-01T00:00:00Z","atime":"2024-01-01T00:00:00Z","ctime":"2024-01-01T00:00:00Z","uid":0,"gid":0,"content":[]}`
	}
	tree := func(names ...string) []byte {
		var parts []string
		for _, n := range names {
			parts = append(parts, node(n))
		}
		return []byte(`{"nodes":[` + strings.Join(parts, ",") + "]}\n")
	}
	for _, tc := range []struct {
		name  string
		buf   []byte
		bad   string // substring of the error; "" = valid
		order []string
	}{
		{"sorted", tree("a", "b", "c"), "", []string{"a", "b", "c"}},
		{"empty tree", []byte(`{"nodes":[]}`), "", nil},
		{"unsorted is sorted", tree("c", "a", "b"), "", []string{"a", "b", "c"}},
		{"duplicate adjacent", tree("a", "b", "b"), `duplicate name "b"`, nil},
		{"duplicate unsorted", tree("b", "a", "b"), `duplicate name "b"`, nil},
		{"dot", tree("a", "."), `name "."`, nil},
		{"dotdot", tree(".."), `name ".."`, nil},
		{"empty name", tree(""), "empty name", nil},
		{"slash", tree("a/b"), `"a/b" holds a slash`, nil},
		{"escaped NUL", tree(`a\\x00b`), `"a\x00b" holds a slash or NUL`, nil},
		{"null node", []byte(`{"nodes":[null]}`), "node 0 is null", nil},
		{"escaped slash name", tree(`..\\x2f..`), "holds a slash", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := DecodeTree(tc.buf)
			if tc.bad == "" {
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, n := range tr.Nodes {
					got = append(got, n.Name)
				}
				if strings.Join(got, ",") != strings.Join(tc.order, ",") {
					t.Fatalf("nodes %q, want %q", got, tc.order)
				}
				return
			}
			if !errors.Is(err, ErrInvalidTree) || !strings.Contains(err.Error(), tc.bad) {
				t.Fatalf("err %v, want ErrInvalidTree containing %q", err, tc.bad)
			}
		})
	}
}

// BenchmarkDecodeTree measures decoding a 1000-node sorted tree, the hot
// path of re-backups of unchanged directories.
func BenchmarkDecodeTree(b *testing.B) {
	tr := &Tree{}
	for i := range 1000 {
		tr.Nodes = append(tr.Nodes, &Node{Name: "file-" + strings.Repeat("x", i%20) + string(rune('a'+i%26)) + itoa(i), Type: NodeFile})
	}
	tr.Sort()
	buf, err := tr.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := DecodeTree(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string {
	const d = "0123456789"
	s := ""
	for {
		s = string(d[i%10]) + s
		i /= 10
		if i == 0 {
			return s
		}
	}
}

// TestDecodeTreeNameRoundTrip: names restic escapes (quotes, backslashes,
// control characters, invalid UTF-8) come back byte for byte.
func TestDecodeTreeNameRoundTrip(t *testing.T) {
	names := []string{"plain", `q"uote`, `back\slash`, "new\nline", "tab\t", "bell\a", "bad\xffutf8", "ünï", "\\x00"}
	tr := &Tree{}
	for _, n := range names {
		tr.Nodes = append(tr.Nodes, &Node{Name: n, Type: NodeFile})
	}
	tr.Sort()
	buf, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeTree(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range got.Nodes {
		if n.Name != tr.Nodes[i].Name {
			t.Errorf("node %d: %q, want %q", i, n.Name, tr.Nodes[i].Name)
		}
	}
	var n Node
	if err := n.UnmarshalJSON([]byte(`{"name":"a\\x41"}`)); err != nil || n.Name != "aA" {
		t.Errorf("UnmarshalJSON: %q %v", n.Name, err)
	}
}
