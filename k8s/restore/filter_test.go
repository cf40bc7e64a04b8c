package restore

import (
	"testing"

	"github.com/cairn-backup/cairn/k8s/layout"
)

func TestRestoreFilter(t *testing.T) {
	f, err := newRestoreFilter(RestoreOptions{
		IncludeNamespaces: []string{"app-*", "db"}, ExcludeNamespaces: []string{"app-old"},
		IncludeResources: []string{"ConfigMaps", "deployments.apps", "Secret", "Widget"},
		ExcludeResources: []string{"secrets"},
		Selector:         "tier=web", OrSelectors: []string{"keep in (yes)"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for ns, want := range map[string]bool{"app-1": true, "db": true, "app-old": false, "dbx": false, "": false} {
		if got := f.namespace(ns); got != want {
			t.Errorf("namespace(%q) = %v, want %v", ns, got, want)
		}
	}
	if f.fullNamespaces() {
		t.Error("filtered restore reported as full")
	}
	for _, tc := range []struct {
		gr, kind string
		inc, exc bool
	}{
		{"configmaps", "ConfigMap", true, false},
		{"deployments.apps", "Deployment", true, false},
		{"deployments.extensions", "Deployment", false, false}, // resource.group must match; kind not listed
		{"secrets", "Secret", true, true},
		{"widgets.example.com", "Widget", true, false}, // by kind
		{"widgets.example.com", "", false, false},      // kind unknown
		{"pods", "Pod", false, false},
	} {
		gr := splitGR(tc.gr)
		if got := f.resourceIncluded(gr, tc.kind); got != tc.inc {
			t.Errorf("%s included = %v, want %v", tc.gr, got, tc.inc)
		}
		if got := f.resourceExcluded(gr, tc.kind); got != tc.exc {
			t.Errorf("%s excluded = %v, want %v", tc.gr, got, tc.exc)
		}
	}
	for _, tc := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"tier": "web"}, true},
		{map[string]string{"keep": "yes"}, true},
		{map[string]string{"tier": "db"}, false},
		{nil, false},
	} {
		if got := f.labelsMatch(tc.labels); got != tc.want {
			t.Errorf("labels %v match = %v, want %v", tc.labels, got, tc.want)
		}
	}

	all, err := newRestoreFilter(RestoreOptions{IncludeNamespaces: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	if !all.fullNamespaces() || !all.labelsMatch(nil) || !all.resourceIncluded(splitGR("pods"), "Pod") || all.resourceExcluded(splitGR("pods"), "Pod") {
		t.Error("an unfiltered restore filters")
	}
	if _, err := newRestoreFilter(RestoreOptions{Selector: "a in (b"}); err == nil {
		t.Error("bad selector accepted")
	}
	if _, err := newRestoreFilter(RestoreOptions{IncludeNamespaces: []string{"[x"}}); err == nil {
		t.Error("bad namespace glob accepted")
	}
}

func TestParseManifestPath(t *testing.T) {
	for _, tc := range []struct {
		p    string
		ok   bool
		want Manifest
	}{
		{"/resources/cluster/persistentvolumes/pv-1.yaml", true, Manifest{Resource: "persistentvolumes", Name: "pv-1"}},
		{"/resources/cluster/clusterroles.rbac.authorization.k8s.io/system:aggregate-to-edit.yaml", true,
			Manifest{Resource: "clusterroles", Group: "rbac.authorization.k8s.io", Name: "system:aggregate-to-edit"}},
		{"/resources/namespaces/web/deployments.apps/front.end.yaml", true,
			Manifest{Namespace: "web", Resource: "deployments", Group: "apps", Name: "front.end"}},
		{"/resources/namespaces/web/configmaps/x.json", false, Manifest{}},
		{"/resources/namespaces/web/configmaps/.yaml", false, Manifest{}},
		{"/resources/cluster/a/b/c.yaml", false, Manifest{}},
		{"/resources/namespaces/configmaps/x.yaml", false, Manifest{}},
		{"/volumes/ns/pod/vol/x.yaml", false, Manifest{}},
		{"/backup.json", false, Manifest{}},
	} {
		got, ok := ParseManifestPath(tc.p)
		if ok != tc.ok {
			t.Errorf("%s: ok = %v, want %v", tc.p, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		tc.want.Path = tc.p
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.p, got, tc.want)
		}
		if back := layout.ManifestPath(got.Namespace, got.Resource, got.Group, got.Name); back != tc.p {
			t.Errorf("ManifestPath(%+v) = %s, want %s", got, back, tc.p)
		}
	}
}

func TestDecodeManifest(t *testing.T) {
	m := Manifest{Path: "/resources/namespaces/web/deployments.apps/front.yaml", Namespace: "web", Resource: "deployments", Group: "apps", Name: "front"}
	good := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: front\n  namespace: web\nspec:\n  replicas: 2\n"
	o, err := decodeManifest(m, []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructuredInt(o.Object, "spec", "replicas"); r != 2 {
		t.Errorf("replicas %d", r)
	}
	for name, bad := range map[string]string{
		"not yaml":        "apiVersion: [",
		"no kind":         "apiVersion: apps/v1\nmetadata: {name: front, namespace: web}\n",
		"other group":     "apiVersion: v1\nkind: Deployment\nmetadata: {name: front, namespace: web}\n",
		"other name":      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: back, namespace: web}\n",
		"other namespace": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: front, namespace: db}\n",
	} {
		if _, err := decodeManifest(m, []byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
