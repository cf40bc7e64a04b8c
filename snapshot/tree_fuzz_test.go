package snapshot

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

func fuzzSeedTree() *Tree {
	id := repo.Hash([]byte("x"))
	when := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("", 3600))
	return &Tree{Nodes: []*Node{
		{Name: "a file", Type: NodeFile, Mode: 0o644, ModTime: when, AccessTime: when, ChangeTime: when, Size: 3, Content: []repo.ID{id, id},
			User: "root", Inode: 12, Links: 2, ExtendedAttributes: []ExtendedAttribute{{Name: "user.x", Value: []byte{0, 1}}}},
		{Name: "dir", Type: NodeDir, Mode: 0o755 | 1<<31, Subtree: &id},
		{Name: "empty", Type: NodeFile, Content: []repo.ID{}},
		{Name: "link\x00\"\\\xff", Type: NodeSymlink, LinkTarget: "../../etc/passwd"},
		{Name: "null", Type: NodeCharDev, Device: 259},
	}}
}

// FuzzDecodeTree: DecodeTree never panics, and a tree it accepts encodes
// and decodes again to the same nodes.
func FuzzDecodeTree(f *testing.F) {
	buf, err := fuzzSeedTree().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(buf)
	f.Add([]byte(`{"nodes":[]}`))
	f.Add([]byte(`{"nodes":null}`))
	f.Add([]byte(`{"nodes":[null]}`))
	f.Add([]byte(`{"nodes":[{"name":"a"},{"name":"a"}]}`))
	f.Add([]byte(`{"nodes":[{"name":".."},{"name":"a/b"},{"name":""}]}`))
	f.Add([]byte(`{"nodes":[{"name":"\\x41\\u00e9","type":"file","content":null,"mtime":"2024-01-01T00:00:00+23:59"}]}`))
	f.Add([]byte(`{"nodes":[{"name":"x","type":"dir","subtree":"00"}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		t1, err := DecodeTree(in)
		if err != nil {
			return
		}
		enc, err := t1.Encode()
		if err != nil {
			// Encoding can fail only on values JSON cannot hold.
			t.Fatalf("decoded tree does not encode: %v", err)
		}
		t2, err := DecodeTree(enc)
		if err != nil {
			t.Fatalf("re-encoded tree rejected: %v\n%s", err, enc)
		}
		if len(t1.Nodes) != len(t2.Nodes) {
			t.Fatalf("%d nodes became %d", len(t1.Nodes), len(t2.Nodes))
		}
		for i := range t1.Nodes {
			a, b := normNode(*t1.Nodes[i]), normNode(*t2.Nodes[i])
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("node %d changed in a round trip:\n%#v\n%#v", i, a, b)
			}
		}
		enc2, _ := t2.Encode()
		if string(enc) != string(enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// normNode makes equal instants in different zones, and nil and empty
// byte slices, compare equal.
func normNode(n Node) Node {
	n.ModTime, n.AccessTime, n.ChangeTime = n.ModTime.UTC(), n.AccessTime.UTC(), n.ChangeTime.UTC()
	var xs []ExtendedAttribute
	for _, x := range n.ExtendedAttributes {
		if len(x.Value) == 0 {
			x.Value = nil
		}
		xs = append(xs, x)
	}
	n.ExtendedAttributes = xs
	return n
}

// FuzzSnapshotJSON: a snapshot file's JSON never panics the decoder, and
// an accepted snapshot re-encodes to the same snapshot.
func FuzzSnapshotJSON(f *testing.F) {
	id := repo.Hash([]byte("t"))
	when := time.Date(2024, 5, 6, 7, 8, 9, 1, time.UTC)
	sn := &Snapshot{Time: when, Tree: &id, Parent: &id, Paths: []string{"/a", "/b"}, Hostname: "h", Tags: []string{"x", "expires=2025"},
		Excludes: []string{"*.o"}, Summary: &Summary{BackupStart: when, BackupEnd: when, FilesNew: 3, DataBlobs: -1}}
	buf, _ := json.Marshal(sn)
	f.Add(buf)
	f.Add([]byte(`{"time":"2024-01-01T00:00:00Z","tree":null,"paths":null}`))
	f.Add([]byte(`{"time":"0000-01-01T00:00:00-23:59","tree":"` + id.String() + `","original":"` + id.String() + `"}`))
	f.Add([]byte(`{"summary":{}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var s1 Snapshot
		if json.Unmarshal(in, &s1) != nil || s1.Tree == nil { // what LoadSnapshot rejects
			return
		}
		enc, err := json.Marshal(&s1)
		if err != nil {
			t.Fatalf("decoded snapshot does not encode: %v", err)
		}
		var s2 Snapshot
		if err := json.Unmarshal(enc, &s2); err != nil {
			t.Fatalf("re-encoded snapshot rejected: %v\n%s", err, enc)
		}
		if a, b := normSnapshot(s1), normSnapshot(s2); !reflect.DeepEqual(a, b) {
			t.Fatalf("snapshot changed in a round trip:\n%#v\n%#v", a, b)
		}
	})
}

func normSnapshot(s Snapshot) Snapshot {
	s.Time = s.Time.UTC()
	for _, l := range []*[]string{&s.Paths, &s.Excludes, &s.Tags} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	if s.Summary != nil {
		sum := *s.Summary
		sum.BackupStart, sum.BackupEnd = sum.BackupStart.UTC(), sum.BackupEnd.UTC()
		s.Summary = &sum
	}
	return s
}
