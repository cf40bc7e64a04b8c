package backup

import (
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
)

var (
	rwVerbs     = []string{"create", "delete", "get", "list", "patch", "update", "watch"}
	resDeploy   = kube.Resource{Group: "apps", Version: "v1", Resource: "deployments", Singular: "deployment", Kind: "Deployment", ShortNames: []string{"deploy"}, Namespaced: true, Verbs: rwVerbs}
	resCM       = kube.Resource{Version: "v1", Resource: "configmaps", Singular: "configmap", Kind: "ConfigMap", ShortNames: []string{"cm"}, Namespaced: true, Verbs: rwVerbs}
	resSvc      = kube.Resource{Version: "v1", Resource: "services", Singular: "service", Kind: "Service", ShortNames: []string{"svc"}, Namespaced: true, Verbs: rwVerbs}
	resKnSvc    = kube.Resource{Group: "serving.knative.dev", Version: "v1", Resource: "services", Singular: "service", Kind: "Service", ShortNames: []string{"ksvc"}, Namespaced: true, Verbs: rwVerbs}
	resPV       = kube.Resource{Version: "v1", Resource: "persistentvolumes", Singular: "persistentvolume", Kind: "PersistentVolume", ShortNames: []string{"pv"}, Verbs: rwVerbs}
	resPVC      = kube.Resource{Version: "v1", Resource: "persistentvolumeclaims", Kind: "PersistentVolumeClaim", Namespaced: true, Verbs: rwVerbs}
	resWidget   = kube.Resource{Group: "example.com", Version: "v1", Resource: "widgets", Singular: "widget", Kind: "Widget", Namespaced: true, Verbs: rwVerbs}
	resSnapshot = kube.Resource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshots", Kind: "VolumeSnapshot", Namespaced: true, Verbs: rwVerbs}
)

func mkRes(dir string, namespaced bool, verbs ...string) kube.Resource {
	r, g := layout.SplitResourceDir(dir)
	if verbs == nil {
		verbs = rwVerbs
	}
	return kube.Resource{Group: g, Version: "v1", Resource: r, Namespaced: namespaced, Verbs: verbs}
}

func TestSkipReason(t *testing.T) {
	cases := []struct {
		r    kube.Resource
		skip bool
	}{
		{resCM, false},
		{resDeploy, false},
		{mkRes("endpoints", true), false},
		{mkRes("leases.coordination.k8s.io", true), false},
		{mkRes("events", true), true},
		{mkRes("events.events.k8s.io", true), true},
		{mkRes("nodes", false), true},
		{mkRes("componentstatuses", false, "get", "list"), true},
		{mkRes("endpointslices.discovery.k8s.io", true), false}, // per object: see below
		{mkRes("ipaddresses.networking.k8s.io", false), true},
		{mkRes("pods.metrics.k8s.io", true, "get", "list"), true},
		{mkRes("bindings", true, "create"), true},
		{mkRes("tokenreviews.authentication.k8s.io", false, "create"), true},
		{mkRes("widgets.example.com", true, "list"), true}, // no get
		{mkRes("volumebackups.cairn.io", true), true},
		{mkRes("volumerestores.cairn.io", true), true},
	}
	for _, c := range cases {
		if got := SkipReason(c.r) != ""; got != c.skip {
			t.Errorf("SkipReason(%s) = %q, want skip=%v", c.r.Dir(), SkipReason(c.r), c.skip)
		}
	}
	leases := mkRes("leases.coordination.k8s.io", true)
	apiserver := map[string]string{"apiserver.kubernetes.io/identity": "kube-apiserver"}
	if skipObject(leases, "kube-node-lease", nil) == "" || skipObject(leases, "kube-system", apiserver) == "" ||
		skipObject(leases, "kube-system", nil) != "" || skipObject(resCM, "kube-node-lease", nil) != "" || skipObject(resCM, "x", apiserver) != "" {
		t.Error("skipObject: only node and API server leases are skipped")
	}
	epSlices := mkRes("endpointslices.discovery.k8s.io", true)
	if skipObject(epSlices, "x", map[string]string{"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}) == "" ||
		skipObject(epSlices, "x", map[string]string{"endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"}) == "" ||
		skipObject(epSlices, "default", map[string]string{"kubernetes.io/service-name": "kubernetes"}) == "" ||
		skipObject(epSlices, "x", map[string]string{"kubernetes.io/service-name": "kubernetes"}) != "" ||
		skipObject(epSlices, "x", map[string]string{"endpointslice.kubernetes.io/managed-by": "payments-team"}) != "" ||
		skipObject(epSlices, "x", nil) != "" {
		t.Error("skipObject: only the cluster's endpoint slices are skipped")
	}
	if countObjects(1) != "1 object" || countObjects(0) != "0 objects" {
		t.Error("countObjects")
	}
}

func TestNamespaceFilter(t *testing.T) {
	cases := []struct {
		f       NamespaceFilter
		all     bool
		in, out []string
	}{
		{NamespaceFilter{}, true, []string{"default", "kube-system", "x"}, nil},
		{NamespaceFilter{Include: []string{"*"}}, true, []string{"a"}, nil},
		{NamespaceFilter{Include: []string{"app-*", "db"}}, false, []string{"app-1", "app-", "db"}, []string{"db2", "app", "default"}},
		{NamespaceFilter{Exclude: []string{"kube-*"}}, false, []string{"default", "kubex"}, []string{"kube-system", "kube-public"}},
		{NamespaceFilter{Include: []string{"team-?"}, Exclude: []string{"team-b"}}, false, []string{"team-a"}, []string{"team-b", "team-ab"}},
		{NamespaceFilter{Include: []string{"[ab]*"}}, false, []string{"alpha", "beta"}, []string{"gamma"}},
	}
	for i, c := range cases {
		if err := c.f.Validate(); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if c.f.All() != c.all {
			t.Errorf("case %d: All() = %v", i, !c.all)
		}
		for _, ns := range c.in {
			if !c.f.Match(ns) {
				t.Errorf("case %d: %q not selected", i, ns)
			}
		}
		for _, ns := range c.out {
			if c.f.Match(ns) {
				t.Errorf("case %d: %q selected", i, ns)
			}
		}
	}
	for _, bad := range []NamespaceFilter{{Include: []string{"[a"}}, {Exclude: []string{""}}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	lit := NamespaceFilter{Include: []string{"a", "b*", "c", "d?"}}.Literal()
	if !slices.Equal(lit, []string{"a", "c"}) {
		t.Errorf("Literal = %v", lit)
	}
}

func TestResourceMatching(t *testing.T) {
	cases := []struct {
		token string
		r     kube.Resource
		want  bool
	}{
		{"deployments", resDeploy, true},
		{"deployment", resDeploy, true},
		{"Deployment", resDeploy, true},
		{"DEPLOY", resDeploy, true},
		{"deployments.apps", resDeploy, true},
		{"Deployment.apps", resDeploy, true},
		{"deployments.extensions", resDeploy, false},
		{"deploymentsx", resDeploy, false},
		{"*", resDeploy, true},
		{"cm", resCM, true},
		{"configmaps", resCM, true},
		{"configmaps.apps", resCM, false},
		{"services", resSvc, true},
		{"services", resKnSvc, true}, // no group: every group
		{"svc", resKnSvc, false},
		{"ksvc", resKnSvc, true},
		{"services.serving.knative.dev", resKnSvc, true},
		{"services.serving.knative.dev", resSvc, false},
		{"widgets.example.com", resWidget, true},
		{" widget ", resWidget, true},
	}
	for _, c := range cases {
		if got := kube.MatchesResource(c.token, c.r); got != c.want {
			t.Errorf("MatchesResource(%q, %s) = %v", c.token, c.r.Dir(), got)
		}
	}
	f := ResourceFilter{Include: []string{"deploy", "cm", "nosuch"}, Exclude: []string{"svc", "nothing.here"}}
	if !f.Included(resDeploy) || !f.Included(resCM) || f.Included(resSvc) {
		t.Error("Included")
	}
	if !f.Excluded(resSvc) || f.Excluded(resDeploy) || f.Excluded(resKnSvc) {
		t.Error("Excluded")
	}
	if !(ResourceFilter{}).Included(resWidget) || (ResourceFilter{}).Excluded(resWidget) {
		t.Error("empty filter must include everything and exclude nothing")
	}
	un := f.Unmatched([]kube.Resource{resDeploy, resCM, resSvc})
	if !slices.Equal(un, []string{"nosuch", "nothing.here"}) {
		t.Errorf("Unmatched = %v", un)
	}
}

func TestLabelFilter(t *testing.T) {
	cases := []struct {
		sel    string
		or     []string
		in     []map[string]string
		out    []map[string]string
		server string
	}{
		{"", nil, []map[string]string{nil, {"a": "b"}}, nil, ""},
		{"app=web", nil, []map[string]string{{"app": "web", "x": "y"}}, []map[string]string{nil, {"app": "db"}}, "app=web"},
		{"app in (web,db),tier!=cache", nil, []map[string]string{{"app": "db"}}, []map[string]string{{"app": "db", "tier": "cache"}}, "app in (db,web),tier!=cache"},
		{"", []string{"app=web", "app=db"}, []map[string]string{{"app": "web"}, {"app": "db"}}, []map[string]string{{"app": "cache"}}, ""},
		{"team=a", []string{"team=b"}, []map[string]string{{"team": "a"}, {"team": "b"}}, []map[string]string{{"team": "c"}}, ""},
		{"", []string{"keep"}, []map[string]string{{"keep": ""}}, []map[string]string{{}}, "keep"},
	}
	for i, c := range cases {
		f, err := NewLabelFilter(c.sel, c.or)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		for _, l := range c.in {
			if !f.Match(l) {
				t.Errorf("case %d: %v does not match", i, l)
			}
		}
		for _, l := range c.out {
			if f.Match(l) {
				t.Errorf("case %d: %v matches", i, l)
			}
		}
		if f.Server() != c.server {
			t.Errorf("case %d: Server() = %q, want %q", i, f.Server(), c.server)
		}
		if f.Empty() != (c.sel == "" && len(c.or) == 0) {
			t.Errorf("case %d: Empty() = %v", i, f.Empty())
		}
	}
	for _, bad := range []struct {
		sel string
		or  []string
	}{{"app in (a", nil}, {"", []string{"a b"}}, {"", []string{""}}} {
		if _, err := NewLabelFilter(bad.sel, bad.or); err == nil {
			t.Errorf("%q %q accepted", bad.sel, bad.or)
		}
	}
	if !ExcludedByLabel(map[string]string{layout.LabelExclude: "true"}) || !ExcludedByLabel(map[string]string{layout.LabelExclude: "True"}) ||
		ExcludedByLabel(map[string]string{layout.LabelExclude: "false"}) || ExcludedByLabel(nil) ||
		ExclusionLabel(map[string]string{LabelVeleroExclude: "true"}) != LabelVeleroExclude ||
		ExcludedByLabel(map[string]string{LabelVeleroExclude: "no"}) {
		t.Error("ExcludedByLabel")
	}
}

func TestNewSelection(t *testing.T) {
	yes, no := true, false
	cases := []struct {
		spec            layout.BackupSpec
		all, needed     bool
		wantErrContains string
	}{
		{layout.BackupSpec{}, true, true, ""},
		{layout.BackupSpec{IncludeNamespaces: []string{"*"}}, true, true, ""},
		{layout.BackupSpec{IncludeNamespaces: []string{"app"}}, false, true, ""},
		{layout.BackupSpec{ExcludeNamespaces: []string{"kube-system"}}, false, true, ""},
		{layout.BackupSpec{IncludeNamespaces: []string{"app"}, IncludeClusterResources: &yes}, true, true, ""},
		{layout.BackupSpec{IncludeClusterResources: &no}, false, false, ""},
		{layout.BackupSpec{Selector: "a in ("}, false, false, "label selector"},
		{layout.BackupSpec{IncludeNamespaces: []string{"[x"}}, false, false, "namespace pattern"},
		{layout.BackupSpec{IncludeResources: []string{""}}, false, false, "empty resource"},
	}
	for i, c := range cases {
		s, err := newSelection(c.spec)
		if c.wantErrContains != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErrContains) {
				t.Errorf("case %d: error %v, want %q", i, err, c.wantErrContains)
			}
			continue
		}
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if s.allCluster != c.all || s.neededCluster != c.needed {
			t.Errorf("case %d: all=%v needed=%v", i, s.allCluster, s.neededCluster)
		}
	}
}

func TestClusterRefs(t *testing.T) {
	ref := func(dir, name string) ObjectRef {
		r, g := layout.SplitResourceDir(dir)
		return ObjectRef{Resource: r, Group: g, Name: name}
	}
	cases := []struct {
		name string
		r    kube.Resource
		obj  map[string]any
		want []ObjectRef
	}{
		{"bound claim", resPVC, map[string]any{"spec": map[string]any{"volumeName": "pv-1", "storageClassName": "fast"}},
			[]ObjectRef{ref("persistentvolumes", "pv-1"), ref("storageclasses.storage.k8s.io", "fast")}},
		{"pending claim, beta annotation", resPVC, map[string]any{"metadata": map[string]any{"annotations": map[string]any{"volume.beta.kubernetes.io/storage-class": "old"}}, "spec": map[string]any{}},
			[]ObjectRef{ref("storageclasses.storage.k8s.io", "old")}},
		{"claim without class", resPVC, map[string]any{"spec": map[string]any{"storageClassName": ""}}, nil},
		{"volume", resPV, map[string]any{"spec": map[string]any{"storageClassName": "fast", "volumeAttributesClassName": "gold"}},
			[]ObjectRef{ref("storageclasses.storage.k8s.io", "fast"), ref("volumeattributesclasses.storage.k8s.io", "gold")}},
		{"rolebinding to clusterrole", mkRes("rolebindings.rbac.authorization.k8s.io", true), map[string]any{"roleRef": map[string]any{"kind": "ClusterRole", "name": "view"}},
			[]ObjectRef{ref("clusterroles.rbac.authorization.k8s.io", "view")}},
		{"clusterrolebinding", mkRes("clusterrolebindings.rbac.authorization.k8s.io", false), map[string]any{"roleRef": map[string]any{"kind": "ClusterRole", "name": "edit"}},
			[]ObjectRef{ref("clusterroles.rbac.authorization.k8s.io", "edit")}},
		{"rolebinding to role", mkRes("rolebindings.rbac.authorization.k8s.io", true), map[string]any{"roleRef": map[string]any{"kind": "Role", "name": "r"}}, nil},
		{"ingress", mkRes("ingresses.networking.k8s.io", true), map[string]any{"spec": map[string]any{"ingressClassName": "nginx"}},
			[]ObjectRef{ref("ingressclasses.networking.k8s.io", "nginx")}},
		{"pod", mkRes("pods", true), map[string]any{"spec": map[string]any{"priorityClassName": "high", "runtimeClassName": "gvisor"}},
			[]ObjectRef{ref("priorityclasses.scheduling.k8s.io", "high"), ref("runtimeclasses.node.k8s.io", "gvisor")}},
		{"deployment", resDeploy, map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"priorityClassName": "high"}}}},
			[]ObjectRef{ref("priorityclasses.scheduling.k8s.io", "high")}},
		{"statefulset", mkRes("statefulsets.apps", true), map[string]any{"spec": map[string]any{
			"template":             map[string]any{"spec": map[string]any{}},
			"volumeClaimTemplates": []any{map[string]any{"spec": map[string]any{"storageClassName": "fast"}}, map[string]any{"spec": map[string]any{"storageClassName": "fast"}}},
		}}, []ObjectRef{ref("storageclasses.storage.k8s.io", "fast")}},
		{"statefulset without spec", mkRes("statefulsets.apps", true), map[string]any{}, nil},
		{"cronjob", mkRes("cronjobs.batch", true), map[string]any{"spec": map[string]any{"jobTemplate": map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"priorityClassName": "low"}}}}}},
			[]ObjectRef{ref("priorityclasses.scheduling.k8s.io", "low")}},
		{"custom resource", resWidget, map[string]any{"spec": map[string]any{}},
			[]ObjectRef{ref("customresourcedefinitions.apiextensions.k8s.io", "widgets.example.com")}},
		{"custom resource in a k8s.io group", resSnapshot, map[string]any{},
			[]ObjectRef{ref("customresourcedefinitions.apiextensions.k8s.io", "volumesnapshots.snapshot.storage.k8s.io")}},
		{"configmap", resCM, map[string]any{"data": map[string]any{"a": "b"}}, nil},
		{"wrong types", resPVC, map[string]any{"spec": "nonsense"}, nil},
	}
	for _, c := range cases {
		got := ClusterRefs(c.r, c.obj)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: ClusterRefs = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestNamespacedRefs(t *testing.T) {
	meta := map[string]any{"namespace": "shop"}
	pod := map[string]any{"metadata": meta, "spec": map[string]any{"serviceAccount": "old-sa", "volumes": []any{
		map[string]any{"name": "a", "persistentVolumeClaim": map[string]any{"claimName": "data"}},
		map[string]any{"name": "b", "ephemeral": map[string]any{}},
		map[string]any{"name": "c", "persistentVolumeClaim": map[string]any{"claimName": "data"}},
		"nonsense",
	}}}
	want := []ObjectRef{{Resource: "serviceaccounts", Namespace: "shop", Name: "old-sa"}, {Resource: "persistentvolumeclaims", Namespace: "shop", Name: "data"}}
	if got := NamespacedRefs(mkRes("pods", true), pod); !slices.Equal(got, want) {
		t.Errorf("pod: %v, want %v", got, want)
	}
	deploy := map[string]any{"metadata": meta, "spec": map[string]any{"template": map[string]any{"spec": map[string]any{"serviceAccountName": "web"}}}}
	if got := NamespacedRefs(resDeploy, deploy); !slices.Equal(got, []ObjectRef{{Resource: "serviceaccounts", Namespace: "shop", Name: "web"}}) {
		t.Errorf("deployment: %v", got)
	}
	if got := NamespacedRefs(resDeploy, map[string]any{"spec": "x"}); got != nil {
		t.Errorf("without namespace: %v", got)
	}
}

func TestValidateBackupName(t *testing.T) {
	for _, ok := range []string{"a", "nightly", "prod-2024-06-01", strings.Repeat("a", 63)} {
		if err := ValidateBackupName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Nightly", "a_b", "-a", "a-", "a.b", "a/b", strings.Repeat("a", 64)} {
		if ValidateBackupName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDiscoveryFailureMatters(t *testing.T) {
	known := []kube.Resource{resDeploy, resCM, resWidget}
	cases := []struct {
		include []string
		group   string
		want    bool
	}{
		{nil, "broken.example.com", true},
		{[]string{"*"}, "broken.example.com", true},
		{[]string{"deploy", "cm"}, "broken.example.com", false},
		{[]string{"deploy", "gizmos"}, "broken.example.com", true}, // gizmos may live there
		{[]string{"deploy", "gizmos.broken.example.com"}, "broken.example.com", true},
		{[]string{"widgets.example.com"}, "broken.example.com", false},
	}
	for _, c := range cases {
		if got := discoveryFailureMatters(ResourceFilter{Include: c.include}, c.group, known); got != c.want {
			t.Errorf("include %v, group %s: %v", c.include, c.group, got)
		}
	}
}
