package kube

import (
	"fmt"
	"slices"
	"strings"
)

// ResourceFilter selects resources by name, for backup and restore alike.
// A name is a plural ("deployments"), a singular, a kind ("Deployment"),
// or a short name ("deploy"), case insensitive, optionally followed by
// ".<group>" ("deployments.apps"); without a group it matches the name in
// every group. "*" matches all.
type ResourceFilter struct {
	Include []string // empty = all
	Exclude []string
}

// Included reports whether r passes the include list.
func (f ResourceFilter) Included(r Resource) bool {
	return len(f.Include) == 0 || matchesAny(f.Include, r)
}

// Excluded reports whether r is on the exclude list.
func (f ResourceFilter) Excluded(r Resource) bool { return matchesAny(f.Exclude, r) }

// Unmatched returns the names of both lists that match none of rs, once
// each, in order.
func (f ResourceFilter) Unmatched(rs []Resource) []string {
	var out []string
	for _, tok := range append(slices.Clone(f.Include), f.Exclude...) {
		if !slices.ContainsFunc(rs, func(r Resource) bool { return MatchesResource(tok, r) }) && !slices.Contains(out, tok) {
			out = append(out, tok)
		}
	}
	return out
}

// Warnings are the warnings to give for the names that match none of rs:
// one each, the same words for backup and restore.
func (f ResourceFilter) Warnings(rs []Resource) []string {
	var out []string
	for _, tok := range f.Unmatched(rs) {
		out = append(out, UnmatchedResourceWarning(tok))
	}
	return out
}

// UnmatchedResourceWarning is the warning for a resource name that
// matches nothing the server serves.
func UnmatchedResourceWarning(name string) string {
	return fmt.Sprintf("resource %q matches no resource the server has (names: plural, singular, kind, short name, optionally .<group>)", name)
}

// Resolve returns the Dirs ("<resource>.<group>") of the resources of rs
// that names match, sorted, and the names that match none: a restore
// resolves its filter names against the target's discovery this way and
// matches the Dirs a backup holds.
func Resolve(names []string, rs []Resource) (dirs, unmatched []string) {
	for _, tok := range names {
		hit := false
		for _, r := range rs {
			if MatchesResource(tok, r) {
				hit = true
				if !slices.Contains(dirs, r.Dir()) {
					dirs = append(dirs, r.Dir())
				}
			}
		}
		if !hit && !slices.Contains(unmatched, tok) {
			unmatched = append(unmatched, tok)
		}
	}
	slices.Sort(dirs)
	return dirs, unmatched
}

func matchesAny(tokens []string, r Resource) bool {
	return slices.ContainsFunc(tokens, func(t string) bool { return MatchesResource(t, r) })
}

// MatchesResource reports whether one filter name matches r.
func MatchesResource(token string, r Resource) bool {
	token = strings.ToLower(strings.TrimSpace(token))
	if token == "*" {
		return true
	}
	name, group, hasGroup := strings.Cut(token, ".")
	if hasGroup && group != strings.ToLower(r.Group) {
		return false
	}
	if name == r.Resource || name == strings.ToLower(r.Singular) || name == strings.ToLower(r.Kind) {
		return true
	}
	return slices.ContainsFunc(r.ShortNames, func(s string) bool { return strings.ToLower(s) == name })
}
