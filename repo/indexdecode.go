package repo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Index files are the bulk of what LoadIndex decodes (about 140 bytes of
// JSON per blob). encoding/json spends most of its time on reflection and
// builds a []PackJSON/[]BlobJSON per file that is thrown away at once; the
// scanner here reads the shape restic and cairn write straight into index
// entries. Anything it is not sure of (a syntax error, a repeated "packs"
// or "blobs" key, escapes or non-ASCII in keys, a number that is not a
// plain uint32, an ID or type it would reject) makes it give up with
// errSlowIndex, and encoding/json, the reference, decides: so the result is
// always exactly what encoding/json gives, errors included.

// errSlowIndex: the fast index decoder leaves this input to encoding/json.
var errSlowIndex = errors.New("index needs the general JSON decoder")

// indexFile is one decoded index file in the in-memory form: entries'
// pack field is a position in packs; each pack's entries are contiguous.
type indexFile struct {
	supersedes IDs
	packs      []packSpan
	entries    []indexEntry
	packsSet   bool // "packs" was an array: IndexJSON.Packs is non-nil
}

// packSpan is one element of "packs": its ID and how many entries follow.
type packSpan struct {
	id       ID
	n        int
	hasBlobs bool // "blobs" was an array: PackJSON.Blobs is non-nil
}

// decodeIndexFile decodes an index file's plaintext into f, through
// encoding/json when the fast scanner gives up.
func decodeIndexFile(buf []byte, f *indexFile) error {
	err := decodeIndexFast(buf, f)
	if err == nil {
		return nil
	}
	ij, err := decodeIndexJSON(buf)
	if err != nil {
		return err
	}
	*f = indexFile{supersedes: ij.Supersedes, packsSet: ij.Packs != nil}
	for _, p := range ij.Packs {
		f.packs = append(f.packs, packSpan{id: p.ID, n: len(p.Blobs), hasBlobs: p.Blobs != nil})
		for _, b := range p.Blobs {
			f.entries = append(f.entries, indexEntry{id: b.ID, typ: b.Type, pack: uint32(len(f.packs) - 1),
				offset: b.Offset, length: b.Length, ulen: b.UncompressedLength})
		}
	}
	return nil
}

// json returns f as encoding/json would have decoded it.
func (f *indexFile) json() *IndexJSON {
	ij := &IndexJSON{Supersedes: f.supersedes}
	if f.packsSet {
		ij.Packs = make([]PackJSON, 0, len(f.packs))
	}
	es := f.entries
	for _, p := range f.packs {
		pj := PackJSON{ID: p.id}
		if p.hasBlobs {
			pj.Blobs = make([]BlobJSON, 0, p.n)
		}
		for _, e := range es[:p.n] {
			pj.Blobs = append(pj.Blobs, BlobJSON{ID: e.id, Type: e.typ, Offset: e.offset, Length: e.length, UncompressedLength: e.ulen})
		}
		es = es[p.n:]
		ij.Packs = append(ij.Packs, pj)
	}
	return ij
}

// decodeIndexJSON is the reference decoder: encoding/json, plus the type
// check of validate.
func decodeIndexJSON(buf []byte) (*IndexJSON, error) {
	ij := &IndexJSON{}
	if len(buf) > 0 && buf[0] == '[' {
		if err := json.Unmarshal(buf, &ij.Packs); err != nil {
			return nil, fmt.Errorf("decode legacy index: %w", err)
		}
	} else if err := json.Unmarshal(buf, ij); err != nil {
		return nil, fmt.Errorf("decode index: %w", err)
	}
	if err := ij.validate(); err != nil {
		return nil, err
	}
	return ij, nil
}

// decodeIndexFast scans buf into f or returns errSlowIndex.
func decodeIndexFast(buf []byte, f *indexFile) error {
	// Every blob is an object: the count of '{' (fast to take) bounds the
	// number of entries, closely for the files restic and cairn write. An
	// entry takes 15 bytes at least, whatever the braces say.
	*f = indexFile{entries: make([]indexEntry, 0, min(bytes.Count(buf, []byte{'{'}), len(buf)/15+1))}
	s := indexScanner{buf: buf}
	var ok bool
	if len(buf) > 0 && buf[0] == '[' { // the legacy format: just the packs
		ok = s.packs(f)
	} else {
		ok = s.top(f)
	}
	if !ok {
		return errSlowIndex
	}
	s.ws()
	if s.pos != len(buf) {
		return errSlowIndex
	}
	return nil
}

type indexScanner struct {
	buf []byte
	pos int
}

func (s *indexScanner) ws() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, 0 at the end.
func (s *indexScanner) peek() byte {
	s.ws()
	if s.pos >= len(s.buf) {
		return 0
	}
	return s.buf[s.pos]
}

func (s *indexScanner) eat(c byte) bool {
	if s.peek() == c {
		s.pos++
		return true
	}
	return false
}

// null consumes a null literal if one is next.
func (s *indexScanner) null() bool {
	if s.peek() == 'n' && len(s.buf)-s.pos >= 4 && string(s.buf[s.pos:s.pos+4]) == "null" {
		s.pos += 4
		return true
	}
	return false
}

// key reads an object key and its colon. Keys with escapes or non-ASCII
// bytes (which encoding/json unescapes and case-folds by Unicode rules)
// are left to encoding/json.
func (s *indexScanner) key() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start := s.pos
	for s.pos < len(s.buf) {
		c := s.buf[s.pos]
		if c == '"' {
			k := s.buf[start:s.pos]
			s.pos++
			return k, s.eat(':')
		}
		if c < 0x20 || c == '\\' || c >= 0x80 {
			return nil, false
		}
		s.pos++
	}
	return nil, false
}

// keyIs matches an ASCII key to a field name (lower case) as encoding/json
// does: exactly or ignoring ASCII case.
func keyIs(k []byte, name string) bool {
	if len(k) != len(name) {
		return false
	}
	for i := range k {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}

// more reads the separator after a member: true for ',', false for the
// closing byte; ok is false for anything else.
func (s *indexScanner) more(closing byte) (more, ok bool) {
	switch s.peek() {
	case ',':
		s.pos++
		return true, true
	case closing:
		s.pos++
		return false, true
	}
	return false, false
}

// top reads {"supersedes": [...], "packs": [...]}.
func (s *indexScanner) top(f *indexFile) bool {
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	packsSeen := false
	for {
		k, ok := s.key()
		if !ok {
			return false
		}
		switch {
		case keyIs(k, "packs"):
			if packsSeen { // encoding/json would decode into the first array in place
				return false
			}
			packsSeen = true
			if !s.null() && !s.packs(f) {
				return false
			}
		case keyIs(k, "supersedes"):
			if s.null() {
				f.supersedes = nil
			} else if !s.ids(&f.supersedes) {
				return false
			}
		default:
			if !s.skip(1) {
				return false
			}
		}
		if more, ok := s.more('}'); !ok {
			return false
		} else if !more {
			return true
		}
	}
}

// ids reads an array of IDs into *dst, replacing what it held.
func (s *indexScanner) ids(dst *IDs) bool {
	if !s.eat('[') {
		return false
	}
	*dst = IDs{}
	if s.eat(']') {
		return true
	}
	for {
		var id ID
		if !s.id(&id) {
			return false
		}
		*dst = append(*dst, id)
		if more, ok := s.more(']'); !ok {
			return false
		} else if !more {
			return true
		}
	}
}

// packs reads the array of packs.
func (s *indexScanner) packs(f *indexFile) bool {
	if !s.eat('[') {
		return false
	}
	f.packsSet = true
	if s.eat(']') {
		return true
	}
	for {
		if s.null() { // a zero PackJSON
			f.packs = append(f.packs, packSpan{})
		} else if !s.pack(f) {
			return false
		}
		if more, ok := s.more(']'); !ok {
			return false
		} else if !more {
			return true
		}
	}
}

// pack reads {"id": ..., "blobs": [...]}, appending its blobs to f.entries.
func (s *indexScanner) pack(f *indexFile) bool {
	if !s.eat('{') {
		return false
	}
	if len(f.packs) >= math.MaxUint32 {
		return false
	}
	num := uint32(len(f.packs))
	f.packs = append(f.packs, packSpan{})
	p := &f.packs[num]
	if s.eat('}') {
		return true
	}
	blobsSeen := false
	for {
		k, ok := s.key()
		if !ok {
			return false
		}
		switch {
		case keyIs(k, "id"):
			if !s.id(&p.id) {
				return false
			}
		case keyIs(k, "blobs"):
			if blobsSeen {
				return false
			}
			blobsSeen = true
			if !s.null() {
				n := len(f.entries)
				if !s.blobs(f, num) {
					return false
				}
				p = &f.packs[num]
				p.hasBlobs, p.n = true, len(f.entries)-n
			}
		default:
			if !s.skip(3) {
				return false
			}
		}
		if more, ok := s.more('}'); !ok {
			return false
		} else if !more {
			return true
		}
	}
}

// blobs reads a pack's array of blobs.
func (s *indexScanner) blobs(f *indexFile, pack uint32) bool {
	if !s.eat('[') {
		return false
	}
	if s.eat(']') {
		return true
	}
	for {
		if !s.blob(f, pack) {
			return false
		}
		if more, ok := s.more(']'); !ok {
			return false
		} else if !more {
			return true
		}
	}
}

// blob reads one blob entry. A repeated field takes the last value, as in
// encoding/json; null leaves a number as it is.
func (s *indexScanner) blob(f *indexFile, pack uint32) bool {
	if !s.eat('{') {
		return false // null included: it would have no type
	}
	f.entries = append(f.entries, indexEntry{pack: pack})
	e := &f.entries[len(f.entries)-1]
	if !s.eat('}') {
		for {
			k, ok := s.key()
			if !ok {
				return false
			}
			switch {
			case keyIs(k, "id"):
				ok = s.id(&e.id)
			case keyIs(k, "type"):
				ok = s.blobType(&e.typ)
			case keyIs(k, "offset"):
				ok = s.uint32(&e.offset)
			case keyIs(k, "length"):
				ok = s.uint32(&e.length)
			case keyIs(k, "uncompressed_length"):
				ok = s.uint32(&e.ulen)
			default:
				ok = s.skip(5)
			}
			if !ok {
				return false
			}
			more, ok := s.more('}')
			if !ok {
				return false
			}
			if !more {
				break
			}
		}
	}
	return e.typ == DataBlob || e.typ == TreeBlob // validate's check
}

// hexVal maps hex digits (either case, as hex.Decode) to their value, and
// every other byte to 0xff.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
		t[c-'a'+'A'] = byte(c - 'a' + 10)
	}
	return t
}()

// id reads a string of 64 hex digits (no escapes) into *id.
func (s *indexScanner) id(id *ID) bool {
	if !s.eat('"') || len(s.buf)-s.pos < 2*IDSize+1 {
		return false
	}
	b := s.buf[s.pos : s.pos+2*IDSize+1]
	if b[2*IDSize] != '"' {
		return false
	}
	var bad byte
	for i := range id {
		hi, lo := hexVal[b[2*i]], hexVal[b[2*i+1]]
		bad |= hi | lo
		id[i] = hi<<4 | lo
	}
	if bad&0xf0 != 0 {
		return false
	}
	s.pos += 2*IDSize + 1
	return true
}

// blobType reads "data" or "tree", byte for byte as BlobType.UnmarshalJSON.
func (s *indexScanner) blobType(t *BlobType) bool {
	s.ws()
	if len(s.buf)-s.pos < 6 {
		return false
	}
	switch string(s.buf[s.pos : s.pos+6]) {
	case `"data"`:
		*t = DataBlob
	case `"tree"`:
		*t = TreeBlob
	default:
		return false
	}
	s.pos += 6
	return true
}

// uint32 reads a JSON integer that fits a uint32 into *v; null leaves *v.
func (s *indexScanner) uint32(v *uint32) bool {
	if s.null() {
		return true
	}
	c := s.peek()
	if c < '0' || c > '9' {
		return false
	}
	var n uint64
	start := s.pos
	for s.pos < len(s.buf) && '0' <= s.buf[s.pos] && s.buf[s.pos] <= '9' {
		n = n*10 + uint64(s.buf[s.pos]-'0')
		if n > math.MaxUint32 {
			return false
		}
		s.pos++
	}
	if s.buf[start] == '0' && s.pos-start > 1 {
		return false // a leading zero is a syntax error
	}
	if s.pos < len(s.buf) {
		if c := s.buf[s.pos]; c == '.' || c == 'e' || c == 'E' {
			return false // valid JSON, but not for a uint32
		}
	}
	*v = uint32(n)
	return true
}

// maxSkipDepth bounds the nesting of ignored values; deeper ones (valid up
// to encoding/json's 10000) are left to encoding/json.
const maxSkipDepth = 200

// skip reads and checks any JSON value (an unknown field's) at the given
// nesting depth.
func (s *indexScanner) skip(depth int) bool {
	switch s.peek() {
	case '{':
		if depth >= maxSkipDepth {
			return false
		}
		s.pos++
		if s.eat('}') {
			return true
		}
		for {
			if s.peek() != '"' || !s.str() || !s.eat(':') || !s.skip(depth+1) {
				return false
			}
			if more, ok := s.more('}'); !ok {
				return false
			} else if !more {
				return true
			}
		}
	case '[':
		if depth >= maxSkipDepth {
			return false
		}
		s.pos++
		if s.eat(']') {
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			if more, ok := s.more(']'); !ok {
				return false
			} else if !more {
				return true
			}
		}
	case '"':
		return s.str()
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return s.number()
	}
	return false
}

func (s *indexScanner) literal(w string) bool {
	if len(s.buf)-s.pos >= len(w) && string(s.buf[s.pos:s.pos+len(w)]) == w {
		s.pos += len(w)
		return true
	}
	return false
}

// str checks a string; s.pos is at its opening quote.
func (s *indexScanner) str() bool {
	s.pos++
	for s.pos < len(s.buf) {
		c := s.buf[s.pos]
		s.pos++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if s.pos >= len(s.buf) {
				return false
			}
			e := s.buf[s.pos]
			s.pos++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(s.buf)-s.pos < 4 {
					return false
				}
				for _, h := range s.buf[s.pos : s.pos+4] {
					if hexVal[h] == 0xff {
						return false
					}
				}
				s.pos += 4
			default:
				return false
			}
		}
	}
	return false
}

// number checks a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *indexScanner) number() bool {
	digits := func() int {
		n := 0
		for s.pos < len(s.buf) && '0' <= s.buf[s.pos] && s.buf[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	at := func(c byte) bool { return s.pos < len(s.buf) && s.buf[s.pos] == c }
	if at('-') {
		s.pos++
	}
	if at('0') {
		s.pos++
	} else if digits() == 0 {
		return false
	}
	if at('.') {
		s.pos++
		if digits() == 0 {
			return false
		}
	}
	if at('e') || at('E') {
		s.pos++
		if at('+') || at('-') {
			s.pos++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
