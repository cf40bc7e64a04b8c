package restore

import (
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/layout"
)

// FuzzVersionPath: paths under /resource-versions come from a backup's
// tree; an accepted one names a manifest the backup could hold, in the
// directory of its own group, at a plain version.
func FuzzVersionPath(f *testing.F) {
	for _, s := range []string{
		"/example.com/v1/namespaces/shop/things.example.com/t1.yaml",
		"/core/v2/cluster/namespaces/x.yaml",
		"/core/v1/cluster/things.example.com/x.yaml",
		"/example.com/v1.1/cluster/things.example.com/x.yaml",
		"/example.com/v1/cluster/../things.example.com/x.yaml",
		"/example.com//cluster/things.example.com/x.yaml",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		m, ver, ok := parseVersionPath(p)
		if !ok {
			return
		}
		if ver == "" || strings.ContainsAny(ver, "./") {
			t.Fatalf("%q: version %q", p, ver)
		}
		if want := layout.ManifestPath(m.Namespace, m.Resource, m.Group, m.Name); want != m.Path {
			t.Fatalf("%q parsed to %+v, whose path is %q", p, m, want)
		}
		back := layout.VersionManifestPath(m.Group, ver, m.Namespace, m.Resource, m.Name)
		if m2, v2, ok := parseVersionPath(strings.TrimPrefix(back, "/"+layout.ResourceVersionsDir)); !ok || v2 != ver || m2.Path != m.Path {
			t.Fatalf("%q -> %+v at %s -> %q -> %+v at %s (%v)", p, m, ver, back, m2, v2, ok)
		}
	})
}
