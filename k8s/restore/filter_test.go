package restore

import (
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/kube"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cairn-backup/cairn/k8s/layout"
)

func TestRestoreFilter(t *testing.T) {
	f, err := newRestoreFilter(RestoreOptions{
		IncludeNamespaces: []string{"app-*", "db"}, ExcludeNamespaces: []string{"app-old"},
		Selector: "tier=web", OrSelectors: []string{"keep in (yes)"},
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
	if !all.fullNamespaces() || !all.labelsMatch(nil) || !all.resourceSelected(kube.Resource{Resource: "pods", Kind: "Pod"}) {
		t.Error("an unfiltered restore filters")
	}
	if _, err := newRestoreFilter(RestoreOptions{Selector: "a in (b"}); err == nil {
		t.Error("bad selector accepted")
	}
	if _, err := newRestoreFilter(RestoreOptions{IncludeNamespaces: []string{"[x"}}); err == nil {
		t.Error("bad namespace glob accepted")
	}
}

// TestRestoreResourceNames: restore filters take the names backup
// filters take, resolved against the target's discovery and what the
// backup holds of resources the target does not serve.
func TestRestoreResourceNames(t *testing.T) {
	api := &apiResources{byGR: map[schema.GroupResource]*apiResource{
		{Resource: "services"}:                         {Kind: "Service", Singular: "service", ShortNames: []string{"svc"}, Namespaced: true},
		{Group: "apps", Resource: "deployments"}:       {Kind: "Deployment", Singular: "deployment", ShortNames: []string{"deploy"}, Namespaced: true},
		{Resource: "configmaps"}:                       {Kind: "ConfigMap", Singular: "configmap", ShortNames: []string{"cm"}, Namespaced: true},
		{Resource: "secrets"}:                          {Kind: "Secret", Singular: "secret", Namespaced: true},
		{Group: "extensions", Resource: "deployments"}: {Kind: "Deployment", Namespaced: true},
	}}
	crd := obj(t, `{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, metadata: {name: widgets.example.com},
		spec: {group: example.com, scope: Namespaced, names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wdg]}}}`)
	gadget := obj(t, `{apiVersion: other.io/v1, kind: Gadget, metadata: {name: g, namespace: x}}`)
	manifests := []Manifest{
		{Resource: "widgets", Group: "example.com", Namespace: "x", Name: "w"},
		{Resource: "gadgets", Group: "other.io", Namespace: "x", Name: "g"},
		{Resource: "gizmos", Group: "other.io", Namespace: "x", Name: "z"}, // not decoded: its kind is unknown
		{Resource: "customresourcedefinitions", Group: "apiextensions.k8s.io", Name: "widgets.example.com"},
	}
	decoded := []*restoreItem{
		{gr: grCRD, src: crd},
		{gr: schema.GroupResource{Group: "other.io", Resource: "gadgets"}, src: gadget},
		{gr: schema.GroupResource{Group: "other.io", Resource: "gizmos"}}, // unreadable
	}
	names := newResourceNames(api, manifests, decoded)

	f, err := newRestoreFilter(RestoreOptions{
		IncludeResources: []string{"svc", "deploy.apps", "WIDGET", "wdg", "gadget", "gizmos.other.io", "cm", "nosuch", " "},
		ExcludeResources: []string{"Service", "cm", "gizmo"},
		RestoreStatus:    []string{"wdg", "Deployments", "nosuch", "nostatus"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		gr             string
		selected, keep bool
	}{
		{"services", false, false},              // included by short name, excluded by kind
		{"deployments.apps", true, true},        // short name with group; status by plural
		{"deployments.extensions", false, true}, // "deploy.apps" names another group; status names no group
		{"widgets.example.com", true, true},     // kind and short name from the backed-up CRD
		{"gadgets.other.io", true, false},       // kind from the backed-up object
		{"gizmos.other.io", true, false},        // resource.group from the manifest; "gizmo" needs a kind or singular
		{"configmaps", false, false},            // included and excluded by short name
		{"secrets", false, false},               // not included
		{"customresourcedefinitions.apiextensions.k8s.io", false, false},
	} {
		r := names.of(splitGR(tc.gr))
		if got := f.resourceSelected(r); got != tc.selected {
			t.Errorf("%s selected = %v, want %v", tc.gr, got, tc.selected)
		}
		if got := f.keepStatus(r); got != tc.keep {
			t.Errorf("%s status kept = %v, want %v", tc.gr, got, tc.keep)
		}
	}
	unmatched := f.warnings(names.list())
	want := []string{kube.UnmatchedResourceWarning("nosuch"), kube.UnmatchedResourceWarning("nostatus"), kube.UnmatchedResourceWarning("gizmo")}
	if !slices.Equal(unmatched, want) {
		t.Errorf("warnings:\n%s\nwant\n%s", strings.Join(unmatched, "\n"), strings.Join(want, "\n"))
	}
	if all, _ := newRestoreFilter(RestoreOptions{IncludeResources: []string{"*"}}); len(all.warnings(names.list())) != 0 {
		t.Error(`"*" warned`)
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
