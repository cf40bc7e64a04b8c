package snapshot

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
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

// Equal sees a change in every field that is encoded, and nothing else.
func TestNodeEqual(t *testing.T) {
	sub := repo.Hash([]byte("sub"))
	base := func() *Node {
		tm := time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC)
		return &Node{Name: "n", Type: NodeFile, Mode: 0o644, ModTime: tm, AccessTime: tm, ChangeTime: tm,
			UID: 1, GID: 2, User: "u", Group: "g", Inode: 3, DeviceID: 4, Size: 5, Links: 6, LinkTarget: "l",
			ExtendedAttributes: []ExtendedAttribute{{Name: "user.a", Value: []byte("v")}}, Device: 7,
			Content: []repo.ID{repo.Hash([]byte("c"))}, Subtree: &sub, Error: "e"}
	}
	a := base()
	if b := base(); !a.Equal(b) {
		t.Fatal("equal nodes differ")
	}
	// The same instant in another zone is the same node.
	b := base()
	b.ModTime = b.ModTime.In(time.FixedZone("x", 3600))
	if !a.Equal(b) {
		t.Error("same mtime in another zone differs")
	}
	// Changing any field (by reflection, so a field added later is covered)
	// makes them differ.
	typ := reflect.TypeOf(Node{})
	for i := range typ.NumField() {
		b := base()
		f := reflect.ValueOf(b).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Uint32, reflect.Uint64:
			f.SetUint(f.Uint() + 1)
		case reflect.Slice:
			f.Set(reflect.Zero(f.Type()))
		case reflect.Pointer:
			other := repo.Hash([]byte("other"))
			f.Set(reflect.ValueOf(&other))
		case reflect.Struct: // time.Time
			f.Set(reflect.ValueOf(f.Interface().(time.Time).Add(time.Nanosecond)))
		default:
			t.Fatalf("field %s of kind %v not covered", typ.Field(i).Name, f.Kind())
		}
		if a.Equal(b) {
			t.Errorf("a change of %s goes unseen", typ.Field(i).Name)
		}
	}
	b = base()
	b.ExtendedAttributes[0].Value = []byte("w")
	if a.Equal(b) {
		t.Error("a change of an xattr's value goes unseen")
	}
	b = base()
	b.Content = append(b.Content, repo.ID{})
	if a.Equal(b) {
		t.Error("a longer content goes unseen")
	}
	// A directory's content null and [] encode differently; a file's do not.
	d1, d2 := &Node{Name: "d", Type: NodeDir}, &Node{Name: "d", Type: NodeDir, Content: []repo.ID{}}
	if d1.Equal(d2) {
		t.Error("a directory's null and empty content are the same")
	}
	f1, f2 := &Node{Name: "f", Type: NodeFile}, &Node{Name: "f", Type: NodeFile, Content: []repo.ID{}}
	if !f1.Equal(f2) {
		t.Error("a file's null and empty content differ")
	}
}
