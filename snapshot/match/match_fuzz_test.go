package match

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
		{"**/*a*/**/b*/**", "/a/ab/x/bb/a/b"},
		{"/**/**/x/**", "/x"},
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
		// The memoized search agrees with plain backtracking (kept small
		// enough for the latter to finish).
		comps := splitPath(p, false)
		for _, pt := range m.pats {
			if pt.stars > 3 || len(comps) > 12 {
				break
			}
			for _, prefix := range []bool{false, true} {
				for start := 0; start <= len(comps); start++ {
					mm := &memoMatch{parts: pt.parts, comps: comps, prefix: prefix}
					if a, b := matchParts(pt.parts, comps[start:], prefix), mm.at(0, start); a != b {
						t.Fatalf("pattern %q on %q from %d (prefix %v): plain %v, memoized %v", pat, p, start, prefix, a, b)
					}
				}
			}
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
			// Only where upper-casing loses nothing the lower-casing
			// matcher could need (not for "ǅ", "ſ", ...).
			up := strings.ToUpper(p)
			if lowUp, low := strings.ToLower(up), strings.ToLower(p); lowUp == low && !mf.Match(up) {
				t.Fatalf("folded pattern %q matches %q, not %q", pat, p, up)
			}
		}
	})
}

// Many "**" parts against a deep path used to take time exponential in
// their number (30 s per path with eight); now it is polynomial. Without
// memoization this test runs until the test binary's timeout.
func TestMatcherManyDoubleStars(t *testing.T) {
	deep := "/" + strings.Repeat("a/", 60) + "b"
	for _, pat := range []string{strings.Repeat("**/", 20) + "x", strings.Repeat("*a*/**/", 12) + "c", "/" + strings.Repeat("**/a/", 15) + "b"} {
		m, err := NewMatcher([]string{pat}, false)
		if err != nil {
			t.Fatal(err)
		}
		want := strings.HasSuffix(pat, "b")
		if got := m.Match(deep); got != want {
			t.Errorf("%q on %q: %v, want %v", pat, deep, got, want)
		}
		if !m.ChildMayMatch("/" + strings.Repeat("a/", 40)) {
			t.Errorf("%q: ChildMayMatch false below a/a/...", pat)
		}
	}
}
