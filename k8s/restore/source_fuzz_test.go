package restore

import (
	"testing"

	"github.com/cairn-backup/cairn/k8s/layout"
)

// FuzzManifestPath: manifest paths read from a backup's tree never panic
// the parser; an accepted path is the one layout.ManifestPath writes for what was
// parsed from it, so it cannot name a file elsewhere in the tree.
func FuzzManifestPath(f *testing.F) {
	for _, s := range []string{
		"/resources/cluster/namespaces/default.yaml",
		"/resources/namespaces/ns/deployments.apps/web.yaml",
		"resources/namespaces/ns/pods/p.yaml",
		"/resources/namespaces//pods/p.yaml",
		"/resources/namespaces/../pods/p.yaml",
		"/resources/cluster/./x.yaml",
		"/resources/cluster/crd.example.com/.yaml",
		"/resources/cluster/a/b/c.yaml",
		"/volumes/ns/pod/vol/f.yaml",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		m, ok := ParseManifestPath(p)
		if !ok {
			return
		}
		if want := layout.ManifestPath(m.Namespace, m.Resource, m.Group, m.Name); want != m.Path {
			t.Fatalf("%q parsed to %+v, whose path is %q", p, m, want)
		}
		m2, ok := ParseManifestPath(m.Path)
		m2.node, m.node = nil, nil
		if !ok || m2 != m {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", p, m, m.Path, m2, ok)
		}
	})
}
