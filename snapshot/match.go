package snapshot

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// Pattern semantics follow restic's exclude/include patterns: a pattern is
// split into path components; one that does not start with "/" may match
// starting at any component; "**" matches any number of components; each
// other component is a path.Match glob. A pattern that matches a directory
// matches everything below it. A leading "!" negates a pattern: a later
// negated pattern takes back an earlier match.
type pattern struct {
	parts    []string
	anchored bool
	negate   bool
}

// Matcher matches slash-separated absolute paths against patterns.
type Matcher struct {
	pats []pattern
	fold bool
}

// NewMatcher compiles patterns; fold makes matching case-insensitive.
func NewMatcher(patterns []string, fold bool) (*Matcher, error) {
	m := &Matcher{fold: fold}
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		var pt pattern
		if strings.HasPrefix(p, "!") {
			pt.negate = true
			p = p[1:]
		}
		p = filepath.ToSlash(filepath.Clean(p))
		if fold {
			p = strings.ToLower(p)
		}
		pt.anchored = strings.HasPrefix(p, "/")
		for _, c := range strings.Split(strings.Trim(p, "/"), "/") {
			if c == "" || c == "." {
				continue
			}
			if _, err := path.Match(c, ""); err != nil {
				return nil, fmt.Errorf("invalid pattern %q: %w", p, err)
			}
			pt.parts = append(pt.parts, c)
		}
		if len(pt.parts) == 0 {
			return nil, fmt.Errorf("invalid pattern %q: matches nothing", p)
		}
		m.pats = append(m.pats, pt)
	}
	return m, nil
}

// Empty reports whether the matcher has no patterns.
func (m *Matcher) Empty() bool { return m == nil || len(m.pats) == 0 }

func splitPath(p string, fold bool) []string {
	p = filepath.ToSlash(p)
	if fold {
		p = strings.ToLower(p)
	}
	return strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
}

// Match reports whether p (or a directory above it) is matched.
func (m *Matcher) Match(p string) bool {
	if m.Empty() {
		return false
	}
	comps := splitPath(p, m.fold)
	matched := false
	for _, pt := range m.pats {
		if pt.negate == matched && pt.match(comps, false) {
			matched = !pt.negate
		}
	}
	return matched
}

// ChildMayMatch reports whether something below directory p could match;
// restore uses it to descend into directories leading to included paths.
func (m *Matcher) ChildMayMatch(p string) bool {
	if m.Empty() {
		return false
	}
	comps := splitPath(p, m.fold)
	for _, pt := range m.pats {
		if !pt.negate && pt.match(comps, true) {
			return true
		}
	}
	return false
}

// match tests the pattern against comps. With prefix, it succeeds when comps
// could be the start of a matching path.
func (pt pattern) match(comps []string, prefix bool) bool {
	if pt.anchored {
		return matchParts(pt.parts, comps, prefix)
	}
	for start := 0; start <= len(comps); start++ {
		if matchParts(pt.parts, comps[start:], prefix) {
			return true
		}
		if prefix { // an unanchored pattern may start below any directory
			return true
		}
	}
	return false
}

func matchParts(parts, comps []string, prefix bool) bool {
	if len(parts) == 0 {
		return true // pattern used up: a directory matched, all below matches
	}
	if len(comps) == 0 {
		return prefix
	}
	if parts[0] == "**" {
		for i := 0; i <= len(comps); i++ {
			if matchParts(parts[1:], comps[i:], prefix) {
				return true
			}
		}
		return false
	}
	if ok, _ := path.Match(parts[0], comps[0]); !ok {
		return false
	}
	return matchParts(parts[1:], comps[1:], prefix)
}
