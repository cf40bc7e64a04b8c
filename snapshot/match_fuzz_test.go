package snapshot

import (
	"path"
	"strings"
	"testing"
)

// FuzzMatcher: patterns never panic the compiler or the matcher, and the
// matcher agrees with itself: a path matched by a positive pattern has
// every directory above it reported by ChildMayMatch (restore descends
// into them), and fold matching ignores case.
func FuzzMatcher(f *testing.F) {
	for _, s := range [][2]string{
		{"*.go", "/src/a.go"},
		{"/home/*/cache", "/home/u/cache/x"},
		{"**/node_modules", "/a/b/node_modules/c"},
		{"a/**/b/**/c", "/x/a/1/b/2/3/c"},
		{"!keep", "/keep"},
		{"[a-", "/a"},
		{"\\", "/\\"},
		{"/", "/"},
		{"#comment", "/#comment"},
		{"[^/]x", "/ax"},
		{"ÄÖ*", "/äöü"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, p string) {
		if len(pat) > 200 || len(p) > 400 {
			return // long inputs add nothing but time to the matcher's search
		}
		p = "/" + strings.TrimLeft(p, "/")
		m, err := NewMatcher([]string{pat}, false)
		if err != nil {
			if _, ferr := NewMatcher([]string{pat}, true); ferr == nil && strings.ToLower(pat) == pat {
				t.Fatalf("pattern %q: exact fails (%v), folded compiles", pat, err)
			}
			return
		}
		mf, err := NewMatcher([]string{pat}, true)
		if err != nil {
			t.Fatalf("pattern %q compiles but not folded: %v", pat, err)
		}
		if m.Match(p) {
			if !strings.HasPrefix(strings.TrimSpace(pat), "!") {
				for d := path.Dir(p); d != "/"; d = path.Dir(d) {
					if !m.ChildMayMatch(d) {
						t.Fatalf("pattern %q matches %q, but ChildMayMatch(%q) is false", pat, p, d)
					}
				}
			}
			// A negated class ("[^a]") excludes both cases when folded.
			if strings.Contains(pat, "^") {
				return
			}
			if !mf.Match(p) {
				t.Fatalf("pattern %q matches %q, folded does not", pat, p)
			}
			if up := strings.ToUpper(p); strings.ToLower(up) == strings.ToLower(p) && !mf.Match(up) {
				t.Fatalf("folded pattern %q matches %q, not %q", pat, p, up)
			}
		}
	})
}
