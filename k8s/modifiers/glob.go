package modifiers

import (
	"errors"
	"regexp"
	"strings"
)

// globRegexp compiles a glob as Velero's conditions use them (gobwas/glob
// syntax): * any run of characters, ? one character, [abc] [a-z] [!a-z]
// classes, {a,b} alternatives, \ escapes. With dots, '.' separates the
// parts of a groupResource: * and ? stop at it, ** does not; so "*"
// matches core resources only ("pods"), "*.apps" the apps group and
// "*.*" every resource of a named group.
func globRegexp(glob string, dots bool) (*regexp.Regexp, error) {
	star, one := ".*", "."
	if dots {
		star, one = `[^.]*`, `[^.]`
	}
	var b strings.Builder
	b.WriteString("^(?:")
	depth := 0
	for i := 0; i < len(glob); i++ {
		c := glob[i]
		switch c {
		case '\\':
			if i+1 == len(glob) {
				return nil, errors.New("ends in a lone \\")
			}
			i++
			b.WriteString(regexp.QuoteMeta(glob[i : i+1]))
		case '*':
			if i+1 < len(glob) && glob[i+1] == '*' {
				for i+1 < len(glob) && glob[i+1] == '*' {
					i++
				}
				b.WriteString(".*")
			} else {
				b.WriteString(star)
			}
		case '?':
			b.WriteString(one)
		case '[':
			end := strings.IndexByte(glob[i+1:], ']')
			if end < 0 {
				return nil, errors.New("unclosed [")
			}
			class := glob[i+1 : i+1+end]
			i += end + 1
			neg := strings.HasPrefix(class, "!")
			class = strings.TrimPrefix(class, "!")
			if class == "" {
				return nil, errors.New("empty [] class")
			}
			b.WriteByte('[')
			if neg {
				b.WriteByte('^')
			}
			for j := 0; j < len(class); j++ {
				switch class[j] {
				case '\\', '[', ']', '^':
					b.WriteByte('\\')
				}
				b.WriteByte(class[j])
			}
			b.WriteByte(']')
		case '{':
			depth++
			b.WriteString("(?:")
		case ',':
			if depth == 0 {
				b.WriteString(",")
			} else {
				b.WriteString("|")
			}
		case '}':
			if depth == 0 {
				return nil, errors.New("} without {")
			}
			depth--
			b.WriteString(")")
		default:
			b.WriteString(regexp.QuoteMeta(glob[i : i+1]))
		}
	}
	if depth != 0 {
		return nil, errors.New("unclosed {")
	}
	b.WriteString(")$")
	return regexp.Compile(b.String())
}
