package repo

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// checkIndexDecode holds the fast decoder to encoding/json: when it
// decodes, encoding/json decodes the same; when it gives up, DecodeIndex's
// answer is encoding/json's. It reports whether the fast path decoded.
func checkIndexDecode(t *testing.T, buf []byte) bool {
	t.Helper()
	want, wantErr := decodeIndexJSON(buf)
	got, gotErr := DecodeIndex(buf)
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("%q: DecodeIndex error %v, encoding/json %v", buf, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: DecodeIndex\n%#v\nencoding/json\n%#v", buf, got, want)
	}
	var f indexFile
	if decodeIndexFast(buf, &f) != nil {
		return false
	}
	if wantErr != nil {
		t.Fatalf("%q: fast decoder accepted what encoding/json rejects: %v", buf, wantErr)
	}
	if fast := f.json(); !reflect.DeepEqual(fast, want) {
		t.Fatalf("%q: fast decoder\n%#v\nencoding/json\n%#v", buf, fast, want)
	}
	// decodeIndexFile (what LoadIndex uses) agrees with both paths.
	var viaFile indexFile
	if err := decodeIndexFile(buf, &viaFile); err != nil || !reflect.DeepEqual(viaFile.json(), want) {
		t.Fatalf("%q: decodeIndexFile: %v", buf, err)
	}
	return true
}

func TestIndexDecodeMatchesJSON(t *testing.T) {
	a, b, c := strings.Repeat("ab", 32), strings.Repeat("01", 32), strings.Repeat("9F", 32)
	blob := `{"id":"` + b + `","type":"data","offset":7,"length":4294967295,"uncompressed_length":3}`
	fast := []string{
		`{"supersedes":["` + a + `"],"packs":[{"id":"` + a + `","blobs":[` + blob + `]}]}`,
		`[{"id":"` + a + `","blobs":[` + blob + `,{"id":"` + c + `","type":"tree","offset":0,"length":0}]}]`,
		`[]`, `{}`, `{"packs":[]}`, `{"packs":null}`, `{"supersedes":[]}`, `{"supersedes":null,"packs":[null]}`,
		`{"packs":[{}]}`, `{"packs":[{"blobs":[]}]}`, `{"packs":[{"blobs":null,"id":"` + a + `"}]}`,
		" \t\r\n{ \"packs\" : [ { \"blobs\" : [ " + blob + " ] , \"id\" : \"" + a + "\" } ] } \n",
		// case-insensitive keys, repeated scalar keys (last wins), null numbers
		`{"PACKS":[{"Id":"` + a + `","BLOBS":[{"ID":"` + b + `","Type":"tree","OFFSET":1,"offset":2,"Length":null,"length":5,"length":null,"Uncompressed_Length":9}]}]}`,
		`{"packs":[{"id":"` + a + `","id":"` + c + `","blobs":[{"id":"` + a + `","id":"` + b + `","type":"data","type":"tree"}]}]}`,
		`{"supersedes":["` + a + `"],"supersedes":["` + b + `","` + c + `"],"Supersedes":null,"supersedes":["` + c + `"]}`,
		// unknown fields of every kind, at every level
		`{"x":{"y":[1,-2.5e+3,0.0,true,false,null,"s\"\\\/\b\f\n\r\t\u00e9",{}],"z":[]},"packs":[{"q":"\ud800","id":"` + a + `","blobs":[{"type":"data","more":[[[]]],"id":"` + b + `"}]}],"w":1}`,
		`{"packs":[{"blobs":[{"id":"` + b + `","type":"data","offset":0,"uncompressed_length":0}]}]}`,
	}
	for _, in := range fast {
		if !checkIndexDecode(t, []byte(in)) {
			t.Errorf("fast decoder gave up on %q", in)
		}
	}
	// Left to encoding/json: errors, and valid inputs the scanner does not
	// model (keys that need unescaping or Unicode folding, repeated arrays
	// that encoding/json decodes into in place).
	slow := []string{
		``, ` `, `null`, ` []`, `[`, `{`, `{"packs":[}`, `{"packs":[{"id":"` + a + `"}],}`, `{"packs":[]}x`, `{"packs":[]} {}`,
		`{"packs":{}}`, `{"packs":1}`, `{"supersedes":[null]}`, `{"supersedes":"` + a + `"}`, `{"supersedes":["` + a[:62] + `"]}`,
		`{"packs":[1]}`, `{"packs":[{"id":null}]}`, `{"packs":[{"id":"` + a + `x"}]}`, `{"packs":[{"id":"` + strings.Repeat("g", 64) + `"}]}`,
		`{"packs":[{"id":"\u0061` + a[1:] + `"}]}`, `{"packs":[{"blobs":[null]}]}`, `{"packs":[{"blobs":[{}]}]}`,
		`{"packs":[{"blobs":[{"type":"Data"}]}]}`, `{"packs":[{"blobs":[{"type":"d\u0061ta"}]}]}`, `{"packs":[{"blobs":[{"type":null}]}]}`,
		`{"packs":[{"blobs":[{"type":"data","offset":4294967296}]}]}`, `{"packs":[{"blobs":[{"type":"data","offset":-1}]}]}`,
		`{"packs":[{"blobs":[{"type":"data","offset":1.0}]}]}`, `{"packs":[{"blobs":[{"type":"data","offset":1e2}]}]}`,
		`{"packs":[{"blobs":[{"type":"data","offset":01}]}]}`, `{"packs":[{"blobs":[{"type":"data","offset":"1"}]}]}`,
		`{"packs":[{"blobs":[{"type":"data","offset":true}]}]}`, `{"packs":[{"blobs":[{"type":"data","offset":{}}]}]}`,
		`{"x":01}`, `{"x":1.}`, `{"x":-}`, `{"x":"\x"}`, `{"x":"\u12"}`, "{\"x\":\"\x01\"}", `{"x":tru}`, `{"x":[1,]}`, `{"x":{"a"}}`,
		`{"x":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`,
		`{"x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
		`{"p\u0061cks":[{"id":"` + a + `"}]}`, "{\"pac\u212as\":[{\"id\":\"" + a + "\"}]}", "{\"\u017fupersedes\":[\"" + a + "\"]}", `{"ü":1}`,
		`{"packs":[{"id":"` + a + `","blobs":[` + blob + `]}],"packs":[{}]}`,
		`{"packs":[{"id":"` + a + `","blobs":[` + blob + `,` + blob + `]}],"packs":[],"packs":[{},{}]}`,
		`{"packs":[{"blobs":[` + blob + `],"blobs":[{"type":"tree"}]}]}`,
		`{"packs":[{"blobs":[` + blob + `],"Blobs":null}]}`,
	}
	for _, in := range slow {
		if checkIndexDecode(t, []byte(in)) {
			t.Errorf("fast decoder took %q", in)
		}
	}
}

// The fast decoder reads what cairn writes (BuildIndexJSON, encoding/json)
// in both formats.
func TestIndexDecodeWritten(t *testing.T) {
	for _, ij := range BuildIndexJSON(fakeBlobs(3000, 70), 1000) {
		ij.Supersedes = IDs{{1}, {2}}
		for _, v := range []any{ij, ij.Packs} {
			buf, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if !checkIndexDecode(t, buf) {
				t.Fatalf("fast decoder gave up on a written index")
			}
		}
	}
}

// FuzzIndexDecode compares the fast decoder with encoding/json on
// arbitrary bytes.
func FuzzIndexDecode(f *testing.F) {
	for _, ij := range BuildIndexJSON(fakeBlobs(5, 2), 100) {
		ij.Supersedes = IDs{{1}}
		buf, _ := json.Marshal(ij)
		f.Add(buf)
		legacy, _ := json.Marshal(ij.Packs)
		f.Add(legacy)
	}
	a := strings.Repeat("aB", 32)
	f.Add([]byte(`{"Packs":[null,{"ID":"` + a + `","blobs":[{"id":"` + a + `","type":"tree","offset":1,"offset":null,"x":[{"y":-1.5e3}]}]}],"supersedes":[]}`))
	f.Add([]byte(`{"packs":[{"blobs":[{"type":"data","length":"1"}],"blobs":null}],"packs":[{}]}`))
	f.Fuzz(func(t *testing.T, buf []byte) {
		checkIndexDecode(t, buf)
	})
}
