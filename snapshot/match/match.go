// Package match implements the include/exclude path patterns that backup
// and restore take (restic's syntax: *, ?, [...] and ** per path component).
package match

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
	// stars counts "**" parts; with more than one, plain backtracking
	// takes time exponential in their number ("**/**/**/**/**/**/x" spent
	// seconds on each path), so matching memoizes.
	stars int
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
			if c == "**" {
				pt.stars++
			}
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
	try := func(start int) bool { return matchParts(pt.parts, comps[start:], prefix) }
	if pt.stars > 1 {
		mm := &memoMatch{parts: pt.parts, comps: comps, prefix: prefix}
		try = func(start int) bool { return mm.at(0, start) }
	}
	if pt.anchored {
		return try(0)
	}
	for start := 0; start <= len(comps); start++ {
		if try(start) {
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

// memoMatch is matchParts remembering, for each pattern part and path
// component, whether the rest matches: at most len(parts)*len(comps)
// states, each tried once.
type memoMatch struct {
	parts, comps []string
	prefix       bool
	memo         []int8 // 0 unknown, 1 no, 2 yes
}

func (m *memoMatch) at(i, j int) bool {
	if i == len(m.parts) {
		return true
	}
	if j == len(m.comps) {
		return m.prefix
	}
	if m.memo == nil {
		m.memo = make([]int8, len(m.parts)*len(m.comps))
	}
	k := i*len(m.comps) + j
	if v := m.memo[k]; v != 0 {
		return v == 2
	}
	ok := false
	if m.parts[i] == "**" {
		for jj := j; jj <= len(m.comps) && !ok; jj++ {
			ok = m.at(i+1, jj)
		}
	} else if match, _ := path.Match(m.parts[i], m.comps[j]); match {
		ok = m.at(i+1, j+1)
	}
	m.memo[k] = 1
	if ok {
		m.memo[k] = 2
	}
	return ok
}
