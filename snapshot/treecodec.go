package snapshot

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/repo"
)

// The tree codec writes and reads the bytes encoding/json writes and reads
// for Tree and Node (restic's tree JSON), without reflection: trees are on
// the hot path of every backup and restore. Its tests hold it to
// encoding/json byte for byte (encoding) and value for value (decoding,
// errors included), on tables and by fuzzing.

// appendTree appends t's JSON (without the newline) to dst.
func appendTree(dst []byte, t *Tree) ([]byte, error) {
	dst = append(dst, `{"nodes":[`...)
	for i, n := range t.Nodes {
		if i > 0 {
			dst = append(dst, ',')
		}
		if n == nil {
			dst = append(dst, "null"...)
			continue
		}
		var err error
		if dst, err = appendNode(dst, n); err != nil {
			return nil, err
		}
	}
	return append(dst, "]}"...), nil
}

// appendNode appends n's JSON: the fields in declaration order, omitempty
// ones left out when zero, the name Go-quoted inside the JSON string.
func appendNode(dst []byte, n *Node) ([]byte, error) {
	q := strconv.Quote(n.Name)
	dst = append(dst, `{"name":`...)
	dst = appendJSONString(dst, q[1:len(q)-1])
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, string(n.Type))
	if n.Mode != 0 {
		dst = append(dst, `,"mode":`...)
		dst = strconv.AppendUint(dst, uint64(n.Mode), 10)
	}
	var err error
	for _, f := range [...]struct {
		key string
		t   time.Time
	}{{`,"mtime":"`, n.ModTime}, {`,"atime":"`, n.AccessTime}, {`,"ctime":"`, n.ChangeTime}} {
		dst = append(dst, f.key...)
		// RFC 3339 text holds nothing JSON escapes.
		if dst, err = f.t.AppendText(dst); err != nil {
			return nil, fmt.Errorf("json: error calling MarshalJSON for type time.Time: %w", err)
		}
		dst = append(dst, '"')
	}
	dst = append(dst, `,"uid":`...)
	dst = strconv.AppendUint(dst, uint64(n.UID), 10)
	dst = append(dst, `,"gid":`...)
	dst = strconv.AppendUint(dst, uint64(n.GID), 10)
	dst = appendOptString(dst, `,"user":`, n.User)
	dst = appendOptString(dst, `,"group":`, n.Group)
	dst = appendOptUint(dst, `,"inode":`, n.Inode)
	dst = appendOptUint(dst, `,"device_id":`, n.DeviceID)
	dst = appendOptUint(dst, `,"size":`, n.Size)
	dst = appendOptUint(dst, `,"links":`, n.Links)
	dst = appendOptString(dst, `,"linktarget":`, n.LinkTarget)
	if len(n.ExtendedAttributes) > 0 {
		dst = append(dst, `,"extended_attributes":[`...)
		for i, x := range n.ExtendedAttributes {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"name":`...)
			dst = appendJSONString(dst, x.Name)
			dst = append(dst, `,"value":`...)
			if x.Value == nil {
				dst = append(dst, "null"...)
			} else {
				dst = append(dst, '"')
				dst = base64.StdEncoding.AppendEncode(dst, x.Value)
				dst = append(dst, '"')
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = appendOptUint(dst, `,"device":`, n.Device)
	dst = append(dst, `,"content":`...)
	if n.Content == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, id := range n.Content {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendID(dst, id)
		}
		dst = append(dst, ']')
	}
	if n.Subtree != nil {
		dst = append(dst, `,"subtree":`...)
		dst = appendID(dst, *n.Subtree)
	}
	dst = appendOptString(dst, `,"error":`, n.Error)
	return append(dst, '}'), nil
}

func appendID(dst []byte, id repo.ID) []byte {
	dst = append(dst, '"')
	dst = hex.AppendEncode(dst, id[:])
	return append(dst, '"')
}

func appendOptString(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	return appendJSONString(append(dst, key...), s)
}

func appendOptUint(dst []byte, key string, v uint64) []byte {
	if v == 0 {
		return dst
	}
	return strconv.AppendUint(append(dst, key...), v, 10)
}

// jsonSafe marks the ASCII bytes encoding/json writes as they are (with
// HTML escaping, its default): printable, except " \ < > &.
var jsonSafe = func() (s [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		s[b] = true
	}
	for _, b := range `"\<>&` {
		s[b] = false
	}
	return s
}()

// appendJSONString appends s as encoding/json quotes a string: short
// escapes for \ " \b \f \n \r \t, \u00XX for other control bytes and <>&,
// \ufffd for each byte of invalid UTF-8, \u2028 and \u2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, `\b`...)
			case '\f':
				dst = append(dst, `\f`...)
			case '\n':
				dst = append(dst, `\n`...)
			case '\r':
				dst = append(dst, `\r`...)
			case '\t':
				dst = append(dst, `\t`...)
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// errTreeSyntax is what the decoder returns for bytes encoding/json would
// reject; the message says where.
var errTreeSyntax = errors.New("invalid tree JSON")

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

// treeDecoder reads one tree blob as encoding/json would decode it into
// struct{ Nodes []*plainNode }: keys matched exactly, else ignoring case
// (bytes.EqualFold), the last of repeated keys winning, unknown keys
// skipped (but validated), null leaving a value as it was (or nil for
// slices and pointers), strings unescaped with invalid UTF-8 replaced.
type treeDecoder struct {
	buf     []byte
	pos     int
	scratch []byte // unescaped strings
	// the last type, user and group read, shared by the nodes that repeat them
	lastType, lastUser, lastGroup string
}

func (d *treeDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errTreeSyntax, d.pos, fmt.Sprintf(format, args...))
}

func (d *treeDecoder) skipSpace() {
	for d.pos < len(d.buf) {
		switch d.buf[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, 0 at the end.
func (d *treeDecoder) peek() byte {
	d.skipSpace()
	if d.pos >= len(d.buf) {
		return 0
	}
	return d.buf[d.pos]
}

func (d *treeDecoder) expect(c byte) error {
	if d.peek() != c {
		return d.errorf("want %q", c)
	}
	d.pos++
	return nil
}

// literal consumes null, true or false if it is next.
func (d *treeDecoder) literal(word string) bool {
	if bytes.HasPrefix(d.buf[d.pos:], []byte(word)) {
		d.pos += len(word)
		return true
	}
	return false
}

// isNull consumes a null if it is next.
func (d *treeDecoder) isNull() bool {
	return d.peek() == 'n' && d.literal("null")
}

// decodeTreeNodes parses buf into nodes (nil entries for null nodes).
func decodeTreeNodes(buf []byte) ([]*Node, error) {
	d := &treeDecoder{buf: buf}
	var nodes []*Node
	if d.isNull() { // a null tree leaves the nodes nil
		if d.peek() != 0 {
			return nil, d.errorf("data after the tree")
		}
		return nil, nil
	}
	err := d.object(1, func(key []byte) error {
		if !matchKey(key, "nodes") {
			return d.skipValue(2)
		}
		if d.isNull() {
			nodes = nil
			return nil
		}
		// As encoding/json decodes into a slice: into the elements it
		// has (a repeated key merges into the nodes of the first).
		i := 0
		err := d.array(2, func() error {
			nodes = sliceSlot(nodes, i)
			if d.isNull() {
				nodes[i] = nil
			} else {
				if nodes[i] == nil {
					nodes[i] = &Node{}
				}
				if err := d.node(nodes[i], 3); err != nil {
					return err
				}
			}
			i++
			return nil
		})
		nodes = sliceEnd(nodes, i)
		return err
	})
	if err != nil {
		return nil, err
	}
	if d.peek() != 0 {
		return nil, d.errorf("data after the tree")
	}
	return nodes, nil
}

// sliceSlot makes element i of s (i <= len(s)) available as encoding/json
// does: within the capacity the old element stays, beyond it is new.
func sliceSlot[T any](s []T, i int) []T {
	if i >= cap(s) {
		var zero T
		return append(s, zero)
	}
	if i >= len(s) {
		return s[:i+1]
	}
	return s
}

// sliceEnd ends a decoded array of n elements: cut to n, a new empty
// slice when there were none.
func sliceEnd[T any](s []T, n int) []T {
	if n == 0 {
		return []T{}
	}
	return s[:n]
}

// matchKey reports whether a JSON key selects the field called name, as
// encoding/json matches them.
func matchKey(key []byte, name string) bool {
	return string(key) == name || bytes.EqualFold(key, []byte(name))
}

// nodeKeys are Node's JSON keys in declaration order.
var nodeKeys = [...]string{"name", "type", "mode", "mtime", "atime", "ctime", "uid", "gid", "user", "group",
	"inode", "device_id", "size", "links", "linktarget", "extended_attributes", "device", "content", "subtree", "error"}

// nodeField returns the index in nodeKeys of the field key selects, or -1:
// an exact match first, else the first ignoring case.
func nodeField(key []byte) int {
	for i, k := range nodeKeys {
		if string(key) == k {
			return i
		}
	}
	for i, k := range nodeKeys {
		if bytes.EqualFold(key, []byte(k)) {
			return i
		}
	}
	return -1
}

// object reads an object at nesting depth depth, calling field for each
// key with the position at its value, which field must consume.
func (d *treeDecoder) object(depth int, field func(key []byte) error) error {
	if depth > maxJSONDepth {
		return d.errorf("nested too deeply")
	}
	if err := d.expect('{'); err != nil {
		return err
	}
	if d.peek() == '}' {
		d.pos++
		return nil
	}
	for {
		if d.peek() != '"' {
			return d.errorf("want a key")
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		d.skipSpace()
		if err := field(key); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return nil
		default:
			return d.errorf("want , or }")
		}
	}
}

// array reads an array at depth, calling elem with the position at each
// element, which elem must consume.
func (d *treeDecoder) array(depth int, elem func() error) error {
	if depth > maxJSONDepth {
		return d.errorf("nested too deeply")
	}
	if err := d.expect('['); err != nil {
		return err
	}
	if d.peek() == ']' {
		d.pos++
		return nil
	}
	for {
		d.skipSpace()
		if err := elem(); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return nil
		default:
			return d.errorf("want , or ]")
		}
	}
}

func (d *treeDecoder) node(n *Node, depth int) error {
	return d.object(depth, func(key []byte) error {
		f := nodeField(key)
		if f < 0 {
			return d.skipValue(depth + 1)
		}
		if d.isNull() {
			switch nodeKeys[f] {
			case "extended_attributes":
				n.ExtendedAttributes = nil
			case "content":
				n.Content = nil
			case "subtree":
				n.Subtree = nil
			}
			return nil // anything else keeps its value
		}
		var err error
		switch nodeKeys[f] {
		case "name":
			n.Name, err = d.stringValue()
		case "type":
			var s string
			s, err = d.internValue(&d.lastType)
			n.Type = NodeType(s)
		case "mode":
			var v uint64
			v, err = d.uintValue(32)
			n.Mode = os.FileMode(v)
		case "mtime":
			err = d.timeValue(&n.ModTime)
		case "atime":
			err = d.timeValue(&n.AccessTime)
		case "ctime":
			err = d.timeValue(&n.ChangeTime)
		case "uid":
			var v uint64
			v, err = d.uintValue(32)
			n.UID = uint32(v)
		case "gid":
			var v uint64
			v, err = d.uintValue(32)
			n.GID = uint32(v)
		case "user":
			n.User, err = d.internValue(&d.lastUser)
		case "group":
			n.Group, err = d.internValue(&d.lastGroup)
		case "inode":
			n.Inode, err = d.uintValue(64)
		case "device_id":
			n.DeviceID, err = d.uintValue(64)
		case "size":
			n.Size, err = d.uintValue(64)
		case "links":
			n.Links, err = d.uintValue(64)
		case "linktarget":
			n.LinkTarget, err = d.stringValue()
		case "extended_attributes":
			n.ExtendedAttributes, err = d.xattrs(n.ExtendedAttributes, depth+1)
		case "device":
			n.Device, err = d.uintValue(64)
		case "content":
			n.Content, err = d.ids(n.Content, depth+1)
		case "subtree":
			var id repo.ID
			if id, err = d.id(); err == nil {
				n.Subtree = &id
			}
		case "error":
			n.Error, err = d.stringValue()
		}
		return err
	})
}

func (d *treeDecoder) xattrs(out []ExtendedAttribute, depth int) ([]ExtendedAttribute, error) {
	i := 0
	err := d.array(depth, func() error {
		out = sliceSlot(out, i)
		x := &out[i] // null leaves it, an object merges into it
		i++
		if d.isNull() {
			return nil
		}
		return d.object(depth+1, func(key []byte) error {
			var value bool
			switch {
			case string(key) == "name":
			case string(key) == "value":
				value = true
			case bytes.EqualFold(key, []byte("name")):
			case bytes.EqualFold(key, []byte("value")):
				value = true
			default:
				return d.skipValue(depth + 2)
			}
			if d.isNull() {
				if value {
					x.Value = nil
				}
				return nil
			}
			var err error
			if value {
				x.Value, err = d.bytesValue()
			} else {
				x.Name, err = d.stringValue()
			}
			return err
		})
	})
	return sliceEnd(out, i), err
}

func (d *treeDecoder) ids(out []repo.ID, depth int) ([]repo.ID, error) {
	i := 0
	err := d.array(depth, func() error {
		out = sliceSlot(out, i)
		var err error
		out[i], err = d.id()
		i++
		return err
	})
	return sliceEnd(out, i), err
}

// id reads an ID (repo.ID's UnmarshalJSON: a string of 64 hex digits; null
// is an error).
func (d *treeDecoder) id() (repo.ID, error) {
	var id repo.ID
	if d.peek() != '"' {
		if err := d.skipValue(maxJSONDepth); err != nil { // a syntax error wins
			return id, err
		}
		return id, d.errorf("an ID must be a string")
	}
	// Fast path: 64 hex digits, no escapes.
	if end := d.pos + 1 + 2*repo.IDSize; end < len(d.buf) && d.buf[end] == '"' {
		if _, err := hex.Decode(id[:], d.buf[d.pos+1:end]); err == nil {
			d.pos = end + 1
			return id, nil
		}
	}
	s, err := d.str()
	if err != nil {
		return id, err
	}
	return repo.ParseID(string(s))
}

// stringValue reads a string value.
func (d *treeDecoder) stringValue() (string, error) {
	if d.peek() != '"' {
		return "", d.wrongType("string")
	}
	s, err := d.str()
	return string(s), err
}

// internValue reads a string value, sharing the string of the previous one
// when equal: nodes of a tree mostly have the same type, user and group.
func (d *treeDecoder) internValue(last *string) (string, error) {
	if d.peek() != '"' {
		return "", d.wrongType("string")
	}
	b, err := d.str()
	if err != nil {
		return "", err
	}
	if string(b) != *last {
		*last = string(b)
	}
	return *last, nil
}

// wrongType validates the value that is not of the wanted type and returns
// an error: a syntax error when it is not even JSON, as encoding/json.
func (d *treeDecoder) wrongType(want string) error {
	if err := d.skipValue(maxJSONDepth); err != nil {
		return err
	}
	return d.errorf("want a %s", want)
}

func (d *treeDecoder) bytesValue() ([]byte, error) {
	if d.peek() != '"' {
		return nil, d.wrongType("base64 string")
	}
	s, err := d.str()
	if err != nil {
		return nil, err
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, s)
	if err != nil {
		return nil, d.errorf("base64: %v", err)
	}
	return b[:n], nil
}

// uintValue reads a number into an unsigned integer of bits bits.
func (d *treeDecoder) uintValue(bits int) (uint64, error) {
	start := d.pos
	if err := d.number(); err != nil {
		if d.peek() == '"' || d.peek() == '{' || d.peek() == '[' || d.peek() == 't' || d.peek() == 'f' {
			return 0, d.wrongType("number")
		}
		return 0, err
	}
	v, err := strconv.ParseUint(string(d.buf[start:d.pos]), 10, bits)
	if err != nil {
		return 0, d.errorf("number %s: %v", d.buf[start:d.pos], err)
	}
	return v, nil
}

// timeValue hands the raw string, quotes and escapes as they are, to
// time.Time's UnmarshalJSON, as encoding/json does.
func (d *treeDecoder) timeValue(t *time.Time) error {
	if d.peek() != '"' {
		return d.wrongType("time string")
	}
	start := d.pos
	if _, err := d.str(); err != nil {
		return err
	}
	if err := t.UnmarshalJSON(d.buf[start:d.pos]); err != nil {
		return d.errorf("time: %v", err)
	}
	return nil
}

// number consumes a JSON number.
func (d *treeDecoder) number() error {
	b, i := d.buf, d.pos
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return d.errorf("invalid value")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return d.errorf("invalid number")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return d.errorf("invalid number")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	d.pos = i
	return nil
}

// skipValue consumes and validates any value at depth.
func (d *treeDecoder) skipValue(depth int) error {
	switch c := d.peek(); c {
	case '{':
		return d.object(depth, func([]byte) error { return d.skipValue(depth + 1) })
	case '[':
		return d.array(depth, func() error { return d.skipValue(depth + 1) })
	case '"':
		_, err := d.str()
		return err
	case 'n':
		if d.literal("null") {
			return nil
		}
	case 't':
		if d.literal("true") {
			return nil
		}
	case 'f':
		if d.literal("false") {
			return nil
		}
	default:
		return d.number()
	}
	return d.errorf("invalid literal")
}

// str consumes a string and returns its unescaped bytes (valid UTF-8:
// invalid bytes become U+FFFD). The result may alias the input or the
// decoder's scratch buffer: copy it before the next call.
func (d *treeDecoder) str() ([]byte, error) {
	b := d.buf
	i := d.pos + 1 // after the quote
	start := i
	// Fast path: no escapes, ASCII or valid UTF-8.
	for i < len(b) {
		c := b[i]
		if c == '"' {
			d.pos = i + 1
			return b[start:i], nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			i += size
			continue
		}
		i++
	}
	out := append(d.scratch[:0], b[start:i]...)
	for {
		if i >= len(b) {
			d.pos = i
			return nil, d.errorf("unterminated string")
		}
		c := b[i]
		switch {
		case c == '"':
			d.pos = i + 1
			d.scratch = out
			return out, nil
		case c < 0x20:
			d.pos = i
			return nil, d.errorf("control character in string")
		case c == '\\':
			if i+1 >= len(b) {
				d.pos = i
				return nil, d.errorf("unterminated string")
			}
			switch e := b[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
				i += 2
			case 'b':
				out, i = append(out, '\b'), i+2
			case 'f':
				out, i = append(out, '\f'), i+2
			case 'n':
				out, i = append(out, '\n'), i+2
			case 'r':
				out, i = append(out, '\r'), i+2
			case 't':
				out, i = append(out, '\t'), i+2
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					d.pos = i
					return nil, d.errorf("invalid \\u escape")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// A valid pair makes one rune; anything else is U+FFFD
					// and the next escape is read on its own.
					if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
						if r2, ok := hex4(b, i+2); ok {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								out = utf8.AppendRune(out, dec)
								i += 6
								continue
							}
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default:
				d.pos = i
				return nil, d.errorf("invalid escape")
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, b[i:i+size]...)
			}
			i += size
		}
	}
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}
