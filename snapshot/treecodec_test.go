package snapshot

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// refEncode is what encoding/json writes for t (the reference the codec
// must equal byte for byte).
func refEncode(t *Tree) ([]byte, error) {
	buf, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	return append(buf, '\n'), nil
}

// refDecode is what encoding/json reads from buf.
func refDecode(buf []byte) ([]*Node, error) {
	var raw struct {
		Nodes []*plainNode `json:"nodes"`
	}
	if err := json.Unmarshal(buf, &raw); err != nil {
		return nil, err
	}
	var out []*Node
	if raw.Nodes != nil {
		out = make([]*Node, len(raw.Nodes))
	}
	for i, p := range raw.Nodes {
		out[i] = (*Node)(p)
	}
	return out, nil
}

// checkEncode compares Encode with encoding/json on t.
func checkEncode(t *testing.T, tr *Tree) {
	t.Helper()
	got, gerr := tr.Encode() // first: it gives files' nil content as []
	want, werr := refEncode(tr)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("encoding/json error %v, codec error %v", werr, gerr)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		from := max(0, i-80)
		t.Fatalf("codec and encoding/json differ at byte %d:\ncodec:         %q\nencoding/json: %q", i, got[from:min(len(got), i+80)], want[from:min(len(want), i+80)])
	}
}

// checkDecode compares the decoder with encoding/json on buf: both fail,
// or both give the same nodes.
func checkDecode(t *testing.T, buf []byte) {
	t.Helper()
	want, werr := refDecode(buf)
	got, gerr := decodeTreeNodes(buf)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("input %q: encoding/json error %v, codec error %v", buf, werr, gerr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("input %q: codec read\n%s\nencoding/json\n%s", buf, dumpNodes(got), dumpNodes(want))
	}
}

func dumpNodes(ns []*Node) string {
	var b strings.Builder
	if ns == nil {
		b.WriteString("(nil)\n")
	}
	for _, n := range ns {
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(reflect.ValueOf(n).Elem().String(), "\n", " "), "\t", " "))
		if n != nil {
			b.WriteString(" ")
			j, _ := json.Marshal((*plainNode)(n))
			b.Write(j)
		}
		b.WriteString("\n")
	}
	return b.String()
}

var codecStrings = []string{
	"", "plain", "with space", `quote " and \ backslash`, "<script>&amp;</script>",
	"\x00\x01\x07\b\f\n\r\t\x1f\x7f", "é ü ß 日本 🎉", "\u2028\u2029", "\xff\xfe invalid \xc3", "\xed\xa0\x80 surrogate",
	"ends in half \xe2\x82", "U+FFFD \ufffd", "/", "..",
}

func TestTreeCodecEncode(t *testing.T) {
	id := repo.Hash([]byte("x"))
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("", 3600), time.FixedZone("odd", -(9*3600 + 30*60 + 17))}
	var nodes []*Node
	for i, s := range codecStrings {
		when := time.Date(1970+i*7, time.Month(1+i%12), 1+i, i, i, i, i*123456789%1e9, zones[i%len(zones)])
		nodes = append(nodes, &Node{Name: s + "n", Type: NodeType(s), User: s, Group: s, LinkTarget: s, Error: s,
			ModTime: when, AccessTime: when.Add(time.Duration(i) * time.Nanosecond), ChangeTime: time.Time{},
			Mode: 0o755 | 1<<31, UID: uint32(i), GID: ^uint32(0), Inode: ^uint64(0), Size: uint64(i), Links: 1, Device: uint64(i) << 40,
			ExtendedAttributes: []ExtendedAttribute{{Name: s, Value: []byte(s)}, {Name: "nil"}, {Name: "empty", Value: []byte{}}},
			Content:            []repo.ID{id, {}}, Subtree: &id})
	}
	nodes = append(nodes, &Node{Name: "zero"}, &Node{Name: "file", Type: NodeFile}, &Node{Name: "dircontent", Type: NodeDir, Content: []repo.ID{}})
	checkEncode(t, &Tree{Nodes: nodes})
	checkEncode(t, &Tree{})
	// Times JSON cannot hold fail in both.
	for _, when := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600))} {
		checkEncode(t, &Tree{Nodes: []*Node{{Name: "t", ModTime: when}}})
	}
}

func TestTreeCodecDecode(t *testing.T) {
	id := repo.Hash([]byte("x")).String()
	full := `{"name":"a\\x00b","type":"file","mode":420,"mtime":"2024-05-06T07:08:09.123456789+01:00","atime":"2024-05-06T07:08:09Z","ctime":"0001-01-01T00:00:00Z","uid":1,"gid":2,"user":"u","group":"g","inode":3,"device_id":4,"size":5,"links":6,"linktarget":"l","extended_attributes":[{"name":"user.x","value":"AAE="},{"name":"n","value":null},{"name":"e","value":""}],"device":7,"content":["` + id + `"],"subtree":"` + id + `","error":"e"}`
	for _, in := range []string{
		`{"nodes":[` + full + `]}` + "\n",
		`{"nodes":[` + full + `,{"name":"b"}]}`,
		`{"nodes":[]}`, `{"nodes":null}`, `{}`, `null`, ` {"nodes" : [ ] } `, `{"nodes":[null]}`,
		`{"NODES":[{"NAME":"x","Type":"dir","SUBTREE":"` + id + `"}]}`,
		`{"nodes":[{"name":"x","ſize":5,"linKtarget":"K","K":1}]}`, // Unicode case folding: ſ is s, K (Kelvin) is k
		`{"nodes":[{"name":"x","name":"y","size":1,"size":null,"content":["` + id + `"],"content":null}]}`,
		`{"nodes":[{"name":"x","extended_attributes":[{"name":"a","value":"AA=="},{"name":"b"}],"extended_attributes":[{"value":"AQ=="},null,{"NAME":"c"}]}]}`,
		`{"nodes":[{"name":"x","extended_attributes":[{"name":"a"},{"name":"b"}],"extended_attributes":[{"value":"AQ=="}],"extended_attributes":[{},{},{}]}]}`,
		`{"nodes":[{"name":"a","size":1},{"name":"b","size":2}],"nodes":[{"type":"dir"}],"nodes":[{},{}]}`,
		`{"nodes":[{"name":"a"}],"nodes":[]}`, `{"nodes":[{"name":"a"}],"nodes":null}`,
		`{"nodes":[{"name":"x","content":[],"extended_attributes":[]}]}`,
		`{"nodes":[{"name":"x","unknown":{"a":[1,2.5e-3,-0,true,false,null,"s\u00e9\ud83c\udf89"]}}],"other":[[[]]]}`,
		`{"nodes":[{"name":"\u00e9\ud800\udc00\ud800x\udc00\ud83c","type":"\/\b\f\n\r\t\"\\"}]}`,
		"{\"nodes\":[{\"name\":\"raw \xff\xfe \xed\xa0\x80 \xe2\x82\"}]}",
		`{"nodes":[{"name":"x","subtree":"` + strings.ToUpper(id) + `"}]}`,
		`{"nodes":[{"name":"x","subtree":"\u0030` + id[1:] + `"}]}`,
		`{"nodes":[{"name":"x","mtime":null,"subtree":null,"mode":null}]}`,
		`{"nodes":[{"name":"x","mode":4294967295,"size":18446744073709551615}]}`,
		// Errors.
		``, `[]`, `"x"`, `5`, `{"nodes":{}}`, `{"nodes":[5]}`, `{"nodes":["x"]}`, `{"nodes":[{"name":5}]}`,
		`{"nodes":[{"name":"x","mode":4294967296}]}`, `{"nodes":[{"name":"x","size":18446744073709551616}]}`,
		`{"nodes":[{"name":"x","size":-1}]}`, `{"nodes":[{"name":"x","size":1.0}]}`, `{"nodes":[{"name":"x","size":1e2}]}`,
		`{"nodes":[{"name":"x","size":"1"}]}`, `{"nodes":[{"name":"x","size":01}]}`, `{"nodes":[{"name":"x","size":true}]}`,
		`{"nodes":[{"name":"x","mtime":"2024-05-06"}]}`, `{"nodes":[{"name":"x","mtime":"\u0032024-05-06T07:08:09Z"}]}`,
		`{"nodes":[{"name":"x","mtime":5}]}`, `{"nodes":[{"name":"x","content":[null]}]}`, `{"nodes":[{"name":"x","content":["00"]}]}`,
		`{"nodes":[{"name":"x","content":"` + id + `"}]}`, `{"nodes":[{"name":"x","subtree":5}]}`, `{"nodes":[{"name":"x","subtree":[]}]}`,
		`{"nodes":[{"name":"x","extended_attributes":[{"value":"!!"}]}]}`, `{"nodes":[{"name":"x","extended_attributes":{}}]}`,
		`{"nodes":[{"name":"x","extended_attributes":[5]}]}`,
		`{"nodes":[]} x`, `{"nodes":[]`, `{"nodes":[],}`, `{"nodes":[,]}`, `{"nodes" []}`, `{nodes:[]}`,
		"{\"nodes\":[{\"name\":\"ctl \x01\"}]}", `{"nodes":[{"name":"bad \x"}]}`, `{"nodes":[{"name":"bad \u12"}]}`,
		`{"nodes":[{"name":"x","unknown":[1,]}]}`, `{"nodes":[{"name":"x","unknown":tru}]}`, `{"nodes":[{"name":"x","unknown":-}]}`,
		`{"nodes":[{"name":"x","unknown":1.}]}`, `{"nodes":[{"name":"x","unknown":1e}]}`, `{"nodes":[{"name":"x","size":5,"unknown":nul}]}`,
		"\xef\xbb\xbf{}",
		strings.Repeat("[", 9999) + strings.Repeat("]", 9999),
		`{"x":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}`,
		`{"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
		`{"nodes":[{"x":` + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + `}]}`,
		`{"nodes":[{"x":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}]}`,
	} {
		checkDecode(t, []byte(in))
	}
}

// FuzzTreeCodecDecode: for any bytes, the decoder and encoding/json both
// fail or read the same nodes.
func FuzzTreeCodecDecode(f *testing.F) {
	buf, err := fuzzSeedTree().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(buf)
	f.Add([]byte(`{"nodes":[{"name":"x","extended_attributes":[{"name":"a","value":"AA=="}],"extended_attributes":[null,{}]}]}`))
	f.Add([]byte(`{"NODES":[{"ſize":1,"mtime":"2024-01-01T00:00:00+23:59","content":[]}],"nodes":[{}]}`))
	f.Add([]byte(`{"nodes":[{"name":"\ud83c\udf89\ud800","unknown":[{"a":1e-5},true,null]}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecode(t, in)
	})
}

// FuzzTreeCodecEncode: for any node, the encoder writes encoding/json's
// bytes (or both fail), and the decoder reads them back as encoding/json.
func FuzzTreeCodecEncode(f *testing.F) {
	f.Add("name", "file", "user", "", "target", "user.x", []byte{1, 2}, uint64(420), int64(1700000000), int64(123456789), int32(3600), uint8(3))
	f.Add("<&>\u2028", "\xff", "\x00", "\"\\", "", "", []byte(nil), uint64(0), int64(-62135596800), int64(0), int32(0), uint8(0))
	f.Add("x", "dir", "", "", "", "", []byte{}, uint64(1<<63), int64(253402300800), int64(999999999), int32(-86399), uint8(255))
	f.Fuzz(func(t *testing.T, name, typ, user, group, link, xname string, xval []byte, num uint64, sec, nsec int64, off int32, flags uint8) {
		when := time.Unix(sec, nsec).In(time.FixedZone("", int(off)))
		id := repo.Hash(binary.LittleEndian.AppendUint64(nil, num))
		n := &Node{Name: name, Type: NodeType(typ), User: user, Group: group, LinkTarget: link, Error: group + user,
			Mode: 0, ModTime: when, AccessTime: when.Add(time.Duration(num)), ChangeTime: when.UTC(),
			UID: uint32(num), GID: uint32(num >> 32), Inode: num, DeviceID: num >> 1, Size: num >> 2, Links: num >> 3, Device: num >> 4}
		if flags&1 != 0 {
			n.Mode = 0o644 | 1<<31
		}
		if flags&2 != 0 {
			n.ExtendedAttributes = []ExtendedAttribute{{Name: xname, Value: xval}, {Name: name}}
		}
		if flags&4 != 0 {
			n.Content = []repo.ID{id, id}
		}
		if flags&8 != 0 {
			n.Subtree = &id
		}
		tr := &Tree{Nodes: []*Node{n, {Name: "second", Type: NodeFile}}}
		checkEncode(t, tr)
		if buf, err := tr.Encode(); err == nil {
			checkDecode(t, buf)
		}
	})
}

var benchTree = func() []byte {
	id := repo.Hash([]byte("x"))
	when := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("", 3600))
	tr := &Tree{}
	for i := range 100 {
		tr.Nodes = append(tr.Nodes, &Node{Name: fmt.Sprintf("file-%03d", i), Type: NodeFile, Mode: 0o644,
			ModTime: when, AccessTime: when, ChangeTime: when, UID: 1000, GID: 1000, User: "user", Group: "group",
			Inode: uint64(1e6 + i), DeviceID: 2049, Size: 1500, Links: 1, Content: []repo.ID{id}})
	}
	buf, err := tr.Encode()
	if err != nil {
		panic(err)
	}
	return buf
}()

// BenchmarkTreeDecode compares the codec with encoding/json on a tree of
// 100 small files' nodes.
func BenchmarkTreeDecode(b *testing.B) {
	b.Run("codec", func(b *testing.B) {
		b.SetBytes(int64(len(benchTree)))
		for b.Loop() {
			if _, err := decodeTreeNodes(benchTree); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(benchTree)))
		for b.Loop() {
			if _, err := refDecode(benchTree); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTreeEncode(b *testing.B) {
	tr, err := DecodeTree(benchTree)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("codec", func(b *testing.B) {
		b.SetBytes(int64(len(benchTree)))
		for b.Loop() {
			if _, err := tr.Encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(benchTree)))
		for b.Loop() {
			if _, err := refEncode(tr); err != nil {
				b.Fatal(err)
			}
		}
	})
}
