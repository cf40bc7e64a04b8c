package restore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/backup"
	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/layout"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestChooseVersion(t *testing.T) {
	for _, c := range []struct {
		have, served []string
		want         string
	}{
		{[]string{"v1", "v2"}, []string{"v2", "v1"}, "v2"},                  // the target's preferred one
		{[]string{"v2", "v1"}, []string{"v3", "v2", "v1"}, "v2"},            // else the source's
		{[]string{"v2beta1", "v1"}, []string{"v3", "v1"}, "v1"},             // else a common one
		{[]string{"v1beta1", "v1", "v2"}, []string{"v3", "v2", "v1"}, "v2"}, // in the target's order
		{[]string{"v1"}, []string{"v1"}, "v1"},
		{[]string{"v1", "v2"}, []string{"v3"}, ""},
		{[]string{"v1"}, nil, ""},
	} {
		got, ok := chooseVersion(c.have, c.served)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("chooseVersion(%v, %v) = %q, %v; want %q", c.have, c.served, got, ok, c.want)
		}
	}
}

func TestParseVersionPath(t *testing.T) {
	for _, c := range []struct {
		group, version, ns, resource, name string
	}{
		{"example.com", "v1", "shop", "things", "t1"},
		{"example.com", "v2beta1", "", "clusterthings", "c"},
		{"", "v2", "shop", "pods", "p"},
	} {
		p := layout.VersionManifestPath(c.group, c.version, c.ns, c.resource, c.name)
		m, v, ok := parseVersionPath(strings.TrimPrefix(p, "/"+layout.ResourceVersionsDir))
		want := layout.ManifestPath(c.ns, c.resource, c.group, c.name)
		if !ok || v != c.version || m.Path != want || m.Group != c.group {
			t.Errorf("%s: %+v %q %v, want %s at %s", p, m, v, ok, want, c.version)
		}
	}
	for _, p := range []string{
		"/core/v1/cluster/things.example.com/x.yaml",           // group dir is not its group's
		"/example.com/v1/namespaces/ns/pods/p.yaml",            // core resource in a named group's dir
		"/example.com/v1.1/cluster/things.example.com/x.yaml",  // not a version
		"/example.com/v1/cluster/../things.example.com/x.yaml", // escapes
		"/example.com/v1",
		"/example.com",
	} {
		if m, v, ok := parseVersionPath(p); ok {
			t.Errorf("%s accepted: %+v %s", p, m, v)
		}
	}
}

func TestCRDServedVersions(t *testing.T) {
	crd := obj(t, `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.example.com}
spec:
  versions:
  - {name: v1beta1, served: true}
  - {name: v1, served: true}
  - {name: v2alpha1, served: true}
  - {name: v2, served: false}
  - {name: v1beta2, served: true}`)
	// The API server orders GA, then beta, then alpha, higher first.
	if got, want := crdServedVersions(crd), []string{"v1", "v1beta2", "v1beta1", "v2alpha1"}; !slices.Equal(got, want) {
		t.Errorf("served %v, want %v", got, want)
	}
}

// TestRestoreChoosesVersion restores custom resources that a backup holds
// at two versions into a cluster that serves one, both, another or (via
// the restored CRD) both again: each is written at the best version both
// have, read from that version's copy, or fails naming the versions.
func TestRestoreChoosesVersion(t *testing.T) {
	cl := rtConnect(t)
	r := rtRepo(t)
	// Fresh names each run: CRDs and namespaces of the last run may
	// still be going away.
	sfx := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	ns := "rt-versions-" + sfx
	rtCleanup(t, cl, ns)
	crd := func(group string, served ...string) string {
		var vs []string
		for i, v := range served {
			vs = append(vs, fmt.Sprintf(`  - {name: %s, served: true, storage: %v, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}`, v, i == 0))
		}
		return fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.%s}
spec:
  group: %s
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
%s
`, group, group, strings.Join(vs, "\n"))
	}
	g := func(p string) string { return p + sfx + ".rtversions.example.com" }
	gA, gB, gC, gD := g("a"), g("b"), g("c"), g("d")
	rtApply(t, cl, crd(gA, "v1")+"---\n"+crd(gB, "v1", "v2")+"---\n"+crd(gC, "v3"))
	if pending, err := waitCRDs(context.Background(), cl, []string{"widgets." + gA, "widgets." + gB, "widgets." + gC}, time.Minute); err != nil || len(pending) > 0 {
		t.Fatalf("CRDs not served: %v %v", pending, err)
	}
	t.Cleanup(func() {
		for _, g := range []string{gA, gB, gC, gD} {
			_ = rtResource(cl, rtRef{gvr: grCRD.WithVersion("v1"), name: "widgets." + g}).Delete(context.Background(), "widgets."+g, metav1.DeleteOptions{})
		}
	})

	files := map[string][]byte{}
	// widget writes the object's copy at one version, labelled with it, so
	// that the restored object says which copy was read.
	widget := func(group, version string, main bool) {
		o := obj(t, fmt.Sprintf(`apiVersion: %s/%s
kind: Widget
metadata: {name: w, namespace: %s, labels: {copy: %s}}
spec: {size: 3}`, group, version, ns, version))
		p, buf := rtManifest(t, schema.GroupResource{Group: group, Resource: "widgets"}, o)
		if !main {
			p = layout.VersionManifestPath(group, version, ns, "widgets", "w")
		}
		files[p] = buf
	}
	widget(gA, "v2", true) // the source read v2; the target serves v1 only
	widget(gA, "v1", false)
	widget(gB, "v1", true) // the target prefers v2
	widget(gB, "v2", false)
	widget(gC, "v1", true) // the target serves v3 only
	widget(gC, "v2", false)
	widget(gD, "v1", true) // the CRD comes with the backup and prefers v2
	widget(gD, "v2", false)
	crdD := obj(t, crd(gD, "v1", "v2"))
	p, buf := rtManifest(t, grCRD, crdD)
	files[p] = buf
	sn := rtWriteBackup(t, r, "versions", files)

	res := rtRestore(t, r, sn, cl, RestoreOptions{IncludeNamespaces: []string{ns}})
	items := rtItems(res)
	for _, c := range []struct{ group, version string }{{gA, "v1"}, {gB, "v2"}, {gD, "v2"}} {
		key := "widgets." + c.group + " " + ns + "/w"
		rtWantAction(t, items, key, ActionCreated)
		got := rtGet(t, cl, schema.GroupVersionResource{Group: c.group, Version: c.version, Resource: "widgets"}, ns, "w")
		if got == nil || got.GetLabels()["copy"] != c.version {
			t.Errorf("%s: restored from the copy at %v, want %s", key, got.GetLabels()["copy"], c.version)
		}
	}
	keyC := "widgets." + gC + " " + ns + "/w"
	rtWantAction(t, items, keyC, ActionFailed)
	if why := items[keyC].Reason; !strings.Contains(why, "v3") || !strings.Contains(why, "v1, v2") {
		t.Errorf("%s: reason %q does not name the versions on both sides", keyC, why)
	}
}

// TestRestoreOfBackupAtOtherVersion backs up a custom resource whose CRD
// serves v1 and v2 (the backup reads v2, the preferred one), stops serving
// v2, and restores: the object comes back from the backup's v1 copy.
func TestRestoreOfBackupAtOtherVersion(t *testing.T) {
	cl := rtConnect(t)
	ctx := context.Background()
	sfx := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	ns, group := "rt-verback-"+sfx, "v"+sfx+".rtversions.example.com"
	crdName := "gadgets." + group
	crd := func(v2served bool) string {
		return fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: %s}
spec:
  group: %s
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, listKind: GadgetList}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
  - {name: v2, served: %v, storage: false, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
`, crdName, group, v2served)
	}
	rtApply(t, cl, crd(true))
	crdRef := rtRef{gvr: grCRD.WithVersion("v1"), name: crdName}
	t.Cleanup(func() { _ = rtResource(cl, crdRef).Delete(ctx, crdName, metav1.DeleteOptions{}) })
	if pending, err := waitCRDs(ctx, cl, []string{crdName}, time.Minute); err != nil || len(pending) > 0 {
		t.Fatalf("CRD not served: %v %v", pending, err)
	}
	rtApply(t, cl, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: %[2]s/v1
kind: Gadget
metadata: {name: g1, namespace: %[1]s}
spec: {colour: green}`, ns, group))
	rtCleanup(t, cl, ns)
	r := rtRepo(t)
	if _, err := backup.Backup(ctx, cl, r, backup.BackupOptions{Name: "verback", Spec: layout.BackupSpec{IncludeNamespaces: []string{ns}}}); err != nil {
		t.Fatalf("backup: %v", err)
	}
	sn, err := catalog.ResolveBackup(ctx, r, "verback")
	if err != nil {
		t.Fatal(err)
	}

	gvr1 := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "gadgets"}
	rtDeleteAndWait(t, cl, rtRef{gvr: gvr1, namespace: ns, name: "g1"})
	live := rtGet(t, cl, crdRef.gvr, "", crdName)
	live.Object["spec"] = obj(t, crd(false)).Object["spec"]
	if _, err := rtResource(cl, crdRef).Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rtWaitFor(t, "v2 no longer served", time.Minute, func() bool {
		_, err := cl.Discovery.ServerResourcesForGroupVersion(group + "/v2")
		return apierrors.IsNotFound(err)
	})

	res := rtRestore(t, r, sn, cl, RestoreOptions{IncludeNamespaces: []string{ns}})
	rtWantAction(t, rtItems(res), "gadgets."+group+" "+ns+"/g1", ActionCreated)
	got := rtGet(t, cl, gvr1, ns, "g1")
	if colour, _, _ := unstructured.NestedString(got.Object, "spec", "colour"); colour != "green" {
		t.Errorf("restored %v", got.Object)
	}
}
