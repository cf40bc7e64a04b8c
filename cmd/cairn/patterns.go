package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/snapshot/match"
)

// buildMatcher compiles case-sensitive and case-insensitive patterns into
// one matcher. Case-insensitive patterns are rewritten into globs that
// accept both cases of every letter ("*.jpg" becomes "*.[jJ][pP][gG]"), so
// both kinds can be mixed, with their order kept for "!" negations.
// It returns nil when there are no patterns.
func buildMatcher(flag string, exact, fold []string) (*match.Matcher, error) {
	pats := append([]string(nil), exact...)
	for _, p := range fold {
		pats = append(pats, foldPattern(p))
	}
	if len(pats) == 0 {
		return nil, nil
	}
	m, err := match.NewMatcher(pats, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if m.Empty() {
		return nil, nil
	}
	return m, nil
}

// foldPattern makes a glob pattern match regardless of case.
func foldPattern(p string) string {
	var b strings.Builder
	// raw[i] is the text of rs[i]: a byte that is not UTF-8 (a file name
	// in another encoding) must reach the matcher as it is, not as U+FFFD.
	var rs []rune
	var raw []string
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRuneInString(p[i:])
		rs, raw = append(rs, r), append(raw, p[i:i+n])
		i += n
	}
	text := func(from, to int) string { return strings.Join(raw[from:to], "") }
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == utf8.RuneError && len(raw[i]) == 1:
			b.WriteString(raw[i])
		case c == '\\' && i+1 < len(rs):
			// An escaped letter stands for itself: fold it as a class.
			i++
			if rs[i] == utf8.RuneError && len(raw[i]) == 1 {
				b.WriteString(`\` + raw[i])
				continue
			}
			b.WriteString(foldRune(rs[i], true))
		case c == '[':
			end := classEnd(rs, i)
			if end < 0 { // malformed: leave it for the matcher to reject
				b.WriteString(text(i, len(rs)))
				return b.String()
			}
			body := text(i+1, end)
			neg := ""
			if strings.HasPrefix(body, "^") {
				neg, body = "^", body[1:]
			}
			b.WriteString("[" + neg + body + foldClassBody(body) + "]")
			i = end
		default:
			b.WriteString(foldRune(c, false))
		}
	}
	return b.String()
}

// classEnd returns the index of the ']' closing the class that starts at
// rs[start], or -1.
func classEnd(rs []rune, start int) int {
	i := start + 1
	if i < len(rs) && rs[i] == '^' {
		i++
	}
	for ; i < len(rs); i++ {
		switch rs[i] {
		case '\\':
			i++
		case ']':
			return i
		}
	}
	return -1
}

// foldClassBody returns the other-case variants of a class body: letters
// and ranges of letters in their other cases. Escapes are kept.
func foldClassBody(body string) string {
	var b strings.Builder
	rs := []rune(body)
	for i := 0; i < len(rs); i++ {
		if rs[i] == '\\' && i+1 < len(rs) {
			i++
			if alt := otherCases(rs[i]); alt != "" {
				b.WriteString(alt)
			}
			continue
		}
		if i+2 < len(rs) && rs[i+1] == '-' {
			b.WriteString(foldRange(rs[i], rs[i+2]))
			i += 2
			continue
		}
		b.WriteString(otherCases(rs[i]))
	}
	return b.String()
}

// maxFoldRange bounds the ranges whose letters are folded one by one; of
// wider ones ("[\x00-\U0010FFFF]") only the ASCII letters are.
const maxFoldRange = 1 << 16

// foldRange returns the other-case forms of the letters in lo-hi, for a
// class body: "[0-X]" must take "a" to "x" too, "[a-z]" the Kelvin sign.
func foldRange(lo, hi rune) string {
	if lo > hi {
		return "" // the matcher rejects the pattern
	}
	if hi-lo >= maxFoldRange {
		lo, hi = max(lo, 'A'), min(hi, 'z')
	}
	var b strings.Builder
	for r := lo; r <= hi; r++ {
		b.WriteString(otherCases(r))
	}
	return b.String()
}

// otherCases returns r's other case forms, escaped when needed.
func otherCases(r rune) string {
	var b strings.Builder
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if strings.ContainsRune(`\]^-`, f) {
			b.WriteByte('\\')
		}
		b.WriteRune(f)
	}
	return b.String()
}

// foldRune returns a pattern that matches r in any case.
func foldRune(r rune, escaped bool) string {
	alt := otherCases(r)
	if alt == "" {
		if escaped {
			return `\` + string(r)
		}
		return string(r)
	}
	self := string(r)
	if strings.ContainsRune(`\]^-`, r) {
		self = `\` + self
	}
	return "[" + self + alt + "]"
}

// readPatternFile reads one pattern or path per line; blank lines and
// lines starting with # are skipped, $VARIABLES are expanded as restic does.
func readPatternFile(name string, expand bool) ([]string, error) {
	if name == "-" {
		return nil, fmt.Errorf("reading %q from stdin is not supported; give a file", name)
	}
	buf, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(buf))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if expand {
			line = os.ExpandEnv(line)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}
