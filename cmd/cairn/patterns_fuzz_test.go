package main

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// foldEach replaces every rune by the next one in its case-folding orbit
// ("a" -> "A", "k" -> "K" -> "k" (Kelvin sign) ...); bytes that are not
// UTF-8 stay as they are.
func foldEach(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteByte(s[i])
		} else {
			b.WriteRune(unicode.SimpleFold(r))
		}
		i += n
	}
	return b.String()
}

// FuzzFoldPattern: --iexclude patterns are rewritten into globs that
// accept any case. A rewritten pattern never panics the matcher, compiles
// whenever the original does, matches what the original matches, and
// matches it with every letter in another case.
func FuzzFoldPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"*.JPG", "/photos/a.jpg"},
		{"[a-c]x", "/Bx"},
		{"\\[x]", "/[x]"},
		{"[\\]]", "/]"},
		{"[]a]", "/a"},
		{"[", "/["},
		{"Straße/*", "/STRASSE/x"},
		{"k*", "/\u212a"},
		{"[^a]", "/A"},
		{"!x", "/X"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, p string) {
		if len(pat) > 200 || len(p) > 400 {
			return
		}
		p = "/" + strings.TrimLeft(p, "/")
		folded := foldPattern(pat)
		exact, err := buildMatcher("--exclude", []string{pat}, nil)
		if err != nil {
			return
		}
		fm, err := buildMatcher("--iexclude", nil, []string{pat})
		if err != nil {
			t.Fatalf("pattern %q compiles, folded %q does not: %v", pat, folded, err)
		}
		if exact == nil || !exact.Match(p) || strings.Contains(pat, "^") {
			return // a negated class excludes every case of its letters
		}
		if !fm.Match(p) {
			t.Fatalf("pattern %q matches %q, folded %q does not", pat, p, folded)
		}
		if q := foldEach(p); !fm.Match(q) {
			t.Fatalf("folded pattern %q (of %q) matches %q, not %q", folded, pat, p, q)
		}
	})
}
