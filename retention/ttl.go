package retention

import (
	"strings"
	"time"
)

// expiryPrefix starts the tag that records when a snapshot expires. A tag
// is used because restic keeps tags when it reads and rewrites snapshots.
const expiryPrefix = "expires="

// ExpiryTag returns the tag that marks a snapshot as expiring at t:
// "expires=2025-01-31T12:00:00Z" (RFC 3339, UTC, whole seconds).
func ExpiryTag(t time.Time) string {
	return expiryPrefix + t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// IsExpiryTag reports whether tag has the form of an expiry tag.
func IsExpiryTag(tag string) bool { return strings.HasPrefix(tag, expiryPrefix) }

// ParseExpiry returns the expiry time recorded in tags. When several expiry
// tags are present the latest wins, so that data is never dropped earlier
// than any of them asks; tags that do not parse are ignored.
func ParseExpiry(tags []string) (time.Time, bool) {
	var when time.Time
	found := false
	for _, tag := range tags {
		v, ok := strings.CutPrefix(tag, expiryPrefix)
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			continue
		}
		if !found || t.After(when) {
			when, found = t, true
		}
	}
	return when, found
}

// Expired reports whether sn has an expiry tag that is at or before now.
func Expired(sn Snapshot, now time.Time) bool {
	t, ok := ParseExpiry(sn.Tags)
	return ok && !now.Before(t)
}
