package layout

import (
	"strings"
	"testing"
)

// FuzzResourceDir: "<resource>.<group>" splits back into its parts for
// every resource name Kubernetes allows (no dots).
func FuzzResourceDir(f *testing.F) {
	f.Add("deployments", "apps")
	f.Add("pods", "")
	f.Add("widgets", "example.com")
	f.Fuzz(func(t *testing.T, resource, group string) {
		if strings.Contains(resource, ".") {
			return
		}
		r, g := SplitResourceDir(ResourceDir(resource, group))
		if r != resource || g != group {
			t.Fatalf("(%q, %q) -> %q -> (%q, %q)", resource, group, ResourceDir(resource, group), r, g)
		}
	})
}
