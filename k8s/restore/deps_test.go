package restore

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestAddDependencies: what restored namespaced objects bring along of the
// backup's cluster-scoped objects, and what keeps it out.
func TestAddDependencies(t *testing.T) {
	docs := []struct {
		m   Manifest
		doc string
	}{
		{Manifest{Resource: "serviceaccounts", Namespace: "app", Name: "runner"}, `{apiVersion: v1, kind: ServiceAccount, metadata: {name: runner, namespace: app}}`},
		{Manifest{Resource: "deployments", Group: "apps", Namespace: "app", Name: "web"},
			`{apiVersion: apps/v1, kind: Deployment, metadata: {name: web, namespace: app}, spec: {template: {spec: {priorityClassName: high, containers: []}}}}`},
		{Manifest{Resource: "cronjobs", Group: "batch", Namespace: "app", Name: "nightly"},
			`{apiVersion: batch/v1, kind: CronJob, metadata: {name: nightly, namespace: app}, spec: {jobTemplate: {spec: {template: {spec: {priorityClassName: batch-low}}}}}}`},
		{Manifest{Resource: "pods", Namespace: "app", Name: "p"}, `{apiVersion: v1, kind: Pod, metadata: {name: p, namespace: app}, spec: {priorityClassName: pod-prio, runtimeClassName: gvisor}}`},
		{Manifest{Resource: "ingresses", Group: "networking.k8s.io", Namespace: "app", Name: "in"},
			`{apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: in, namespace: app}, spec: {ingressClassName: nginx}}`},
		{Manifest{Resource: "runtimeclasses", Group: "node.k8s.io", Name: "gvisor"}, `{apiVersion: node.k8s.io/v1, kind: RuntimeClass, metadata: {name: gvisor}, handler: runsc}`},
		{Manifest{Resource: "ingressclasses", Group: "networking.k8s.io", Name: "nginx"}, `{apiVersion: networking.k8s.io/v1, kind: IngressClass, metadata: {name: nginx}}`},
		{Manifest{Resource: "ingressclasses", Group: "networking.k8s.io", Name: "other"}, `{apiVersion: networking.k8s.io/v1, kind: IngressClass, metadata: {name: other}}`},
		{Manifest{Resource: "rolebindings", Group: "rbac.authorization.k8s.io", Namespace: "app", Name: "view"},
			`{apiVersion: rbac.authorization.k8s.io/v1, kind: RoleBinding, metadata: {name: view, namespace: app}, roleRef: {kind: ClusterRole, name: app-viewer}}`},
		{Manifest{Resource: "serviceaccounts", Namespace: "other", Name: "runner"}, `{apiVersion: v1, kind: ServiceAccount, metadata: {name: runner, namespace: other}}`},
		// Cluster-scoped: only as dependencies.
		{Manifest{Resource: "clusterrolebindings", Group: "rbac.authorization.k8s.io", Name: "runner-reads"},
			`{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRoleBinding, metadata: {name: runner-reads}, roleRef: {kind: ClusterRole, name: reader},
			  subjects: [{kind: User, name: alice}, {kind: ServiceAccount, name: runner, namespace: app}]}`},
		{Manifest{Resource: "clusterrolebindings", Group: "rbac.authorization.k8s.io", Name: "other-runner"},
			`{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRoleBinding, metadata: {name: other-runner}, roleRef: {kind: ClusterRole, name: writer},
			  subjects: [{kind: ServiceAccount, name: runner, namespace: other}, {kind: Group, name: app}]}`},
		{Manifest{Resource: "clusterroles", Group: "rbac.authorization.k8s.io", Name: "reader"}, `{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: reader}}`},
		{Manifest{Resource: "clusterroles", Group: "rbac.authorization.k8s.io", Name: "writer"}, `{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: writer}}`},
		{Manifest{Resource: "clusterroles", Group: "rbac.authorization.k8s.io", Name: "app-viewer"}, `{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: app-viewer}}`},
		{Manifest{Resource: "priorityclasses", Group: "scheduling.k8s.io", Name: "high"}, `{apiVersion: scheduling.k8s.io/v1, kind: PriorityClass, metadata: {name: high}, value: 1000}`},
		{Manifest{Resource: "priorityclasses", Group: "scheduling.k8s.io", Name: "batch-low"}, `{apiVersion: scheduling.k8s.io/v1, kind: PriorityClass, metadata: {name: batch-low}, value: 10}`},
		{Manifest{Resource: "priorityclasses", Group: "scheduling.k8s.io", Name: "pod-prio"}, `{apiVersion: scheduling.k8s.io/v1, kind: PriorityClass, metadata: {name: pod-prio}, value: 5}`},
		{Manifest{Resource: "priorityclasses", Group: "scheduling.k8s.io", Name: "unused"}, `{apiVersion: scheduling.k8s.io/v1, kind: PriorityClass, metadata: {name: unused}, value: 1}`},
	}
	for _, tc := range []struct {
		name    string
		exclude []string
		want    string // the cluster-scoped objects added, sorted
	}{
		{"all needs", nil, "clusterrolebindings.rbac.authorization.k8s.io/runner-reads clusterroles.rbac.authorization.k8s.io/app-viewer clusterroles.rbac.authorization.k8s.io/reader " +
			"ingressclasses.networking.k8s.io/nginx priorityclasses.scheduling.k8s.io/batch-low priorityclasses.scheduling.k8s.io/high priorityclasses.scheduling.k8s.io/pod-prio runtimeclasses.node.k8s.io/gvisor"},
		{"excluded by name", []string{"pc", "clusterrolebinding", "ingressclass", "runtimeclasses.node.k8s.io"}, "clusterroles.rbac.authorization.k8s.io/app-viewer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := newRestoreFilter(RestoreOptions{IncludeNamespaces: []string{"app"}, ExcludeResources: tc.exclude})
			if err != nil {
				t.Fatal(err)
			}
			api := &apiResources{byGR: map[schema.GroupResource]*apiResource{
				grPriorityClass: {Kind: "PriorityClass", ShortNames: []string{"pc"}},
				grCRB:           {Kind: "ClusterRoleBinding", Singular: "clusterrolebinding"},
			}}
			var cands []*restoreItem
			selected := map[*restoreItem]bool{}
			for _, d := range docs {
				it := &restoreItem{m: d.m, gr: d.m.GroupResource(), src: obj(t, d.doc)}
				cands = append(cands, it)
				if d.m.Namespace == "app" {
					selected[it] = true
				}
			}
			rs := &restorer{filter: f, names: newResourceNames(api, nil, cands)}
			rs.addDependencies(cands, selected)
			var got []string
			for it := range selected {
				if it.m.Namespace == "" {
					got = append(got, grString(it.gr)+"/"+it.m.Name)
				}
			}
			slices.Sort(got)
			if strings.Join(got, " ") != tc.want {
				t.Errorf("added\n %s\nwant\n %s", strings.Join(got, " "), tc.want)
			}
		})
	}
}

// TestMapSubjects: a ClusterRoleBinding whose service accounts a mapping
// moves becomes a copy of its own; RoleBindings move with their namespace.
func TestMapSubjects(t *testing.T) {
	m := map[string]string{"prod": "staging", "db": "db-copy"}
	for _, tc := range []struct {
		name string
		gr   schema.GroupResource
		in   string
		want string
	}{
		{"binding moved", grCRB,
			`{metadata: {name: b}, subjects: [{kind: ServiceAccount, name: sa, namespace: prod}, {kind: ServiceAccount, name: x, namespace: other}, {kind: User, name: prod}]}`,
			`{metadata: {name: b-staging}, subjects: [{kind: ServiceAccount, name: sa, namespace: staging}, {kind: ServiceAccount, name: x, namespace: other}, {kind: User, name: prod}]}`},
		{"two namespaces moved", grCRB,
			`{metadata: {name: b}, subjects: [{kind: ServiceAccount, name: sa, namespace: prod}, {kind: ServiceAccount, name: x, namespace: db}, {kind: ServiceAccount, name: y, namespace: prod}]}`,
			`{metadata: {name: b-db-copy-staging}, subjects: [{kind: ServiceAccount, name: sa, namespace: staging}, {kind: ServiceAccount, name: x, namespace: db-copy}, {kind: ServiceAccount, name: y, namespace: staging}]}`},
		{"nothing moved", grCRB,
			`{metadata: {name: b}, subjects: [{kind: ServiceAccount, name: sa, namespace: other}, {kind: Group, name: prod}]}`,
			`{metadata: {name: b}, subjects: [{kind: ServiceAccount, name: sa, namespace: other}, {kind: Group, name: prod}]}`},
		{"no subjects", grCRB, `{metadata: {name: b}}`, `{metadata: {name: b}}`},
		{"role binding keeps its name", grRoleBinding,
			`{metadata: {name: rb, namespace: prod}, subjects: [{kind: ServiceAccount, name: sa, namespace: prod}]}`,
			`{metadata: {name: rb, namespace: prod}, subjects: [{kind: ServiceAccount, name: sa, namespace: staging}]}`},
	} {
		o := obj(t, tc.in)
		mapSubjects(o, tc.gr, m)
		sameObj(t, tc.name, o, obj(t, tc.want))
	}
	long := copiedBindingName(strings.Repeat("b", 250), []string{"staging"})
	if len(long) != maxBindingName || !strings.HasPrefix(long, strings.Repeat("b", 200)) || long == copiedBindingName(strings.Repeat("b", 250), []string{"other"}) {
		t.Errorf("long name %q (%d)", long, len(long))
	}
}

func TestPodSpecString(t *testing.T) {
	for _, tc := range []struct {
		gr   schema.GroupResource
		doc  string
		want string
	}{
		{grPod, `{spec: {priorityClassName: a}}`, "a"},
		{grJob, `{spec: {template: {spec: {priorityClassName: b}}}}`, "b"},
		{grCronJob, `{spec: {jobTemplate: {spec: {template: {spec: {priorityClassName: c}}}}}}`, "c"},
		{grStatefulSet, `{spec: {template: {spec: {priorityClassName: d}}}}`, "d"},
		{grPod, `{spec: {}}`, ""},
		{grConfigMap, `{spec: {priorityClassName: e}}`, ""},
	} {
		if got := podSpecString(obj(t, tc.doc), tc.gr, "priorityClassName"); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.gr, tc.doc, got, tc.want)
		}
	}
}
