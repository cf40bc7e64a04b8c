package modifiers

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

var (
	grPVC    = schema.GroupResource{Resource: "persistentvolumeclaims"}
	grPod    = schema.GroupResource{Resource: "pods"}
	grDeploy = schema.GroupResource{Group: "apps", Resource: "deployments"}
	grPV     = schema.GroupResource{Resource: "persistentvolumes"}
	grWidget = schema.GroupResource{Group: "example.com", Resource: "widgets"}
)

func obj(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatal(err)
	}
	return u
}

func load(t *testing.T, name string) *Rules {
	t.Helper()
	r, err := Load("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func pvc(name, ns, class string, labels string) string {
	return "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: " + name + "\n  namespace: " + ns +
		"\n  labels: {" + labels + "}\n  annotations: {foo: x, keep: y}\nspec:\n  storageClassName: " + class + "\n"
}

// applyCase runs one object through rules and compares the result with
// want ("" = unchanged).
type applyCase struct {
	name    string
	gr      schema.GroupResource
	in      string
	want    string
	applied []int
}

func runCases(t *testing.T, r *Rules, cases []applyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := obj(t, tc.in)
			out, err := r.Apply(u, tc.gr)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			want := tc.want
			if want == "" {
				want = tc.in
			}
			if w := obj(t, want); !reflect.DeepEqual(u.Object, w.Object) {
				got, _ := yaml.Marshal(u.Object)
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			if !reflect.DeepEqual(out.Applied, tc.applied) {
				t.Errorf("applied rules %v, want %v", out.Applied, tc.applied)
			}
		})
	}
}

func TestVeleroTemplate(t *testing.T) {
	runCases(t, load(t, "velero-template.yaml"), []applyCase{
		{"matches", grPVC, pvc("mysql-data", "foo", "standard", "foo: bar, test: x"),
			pvc("mysql-data", "foo", "premium", "foo: bar"), []int{0}},
		{"other namespace", grPVC, pvc("mysql-data", "baz", "standard", "foo: bar, test: x"), "", nil},
		{"other name", grPVC, pvc("pg-data", "bar", "standard", "foo: bar, test: x"), "", nil},
		{"label missing", grPVC, pvc("mysql-data", "bar", "standard", "test: x"), "", nil},
		{"other resource", grPod, strings.Replace(pvc("mysql-data", "bar", "standard", "foo: bar, test: x"), "PersistentVolumeClaim", "Pod", 1), "", nil},
	})
}

func TestVeleroTestOperation(t *testing.T) {
	runCases(t, load(t, "velero-test-op.yaml"), []applyCase{
		{"premium becomes standard", grPVC, pvc("a", "bar", "premium", ""), pvc("a", "bar", "standard", ""), []int{0}},
		{"other class untouched", grPVC, pvc("a", "foo", "gold", ""), "", nil},
	})
}

func TestVeleroOtherExamples(t *testing.T) {
	deploy := func(name string, containers string) string {
		return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: " + name + ", namespace: bar}\nspec:\n  template:\n    spec:\n      containers: " + containers + "\n"
	}
	nginx := `{"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]}`
	app := `{"name": "app", "image": "app:1"}`
	runCases(t, load(t, "velero-other.yaml"), []applyCase{
		{"add and copy", grDeploy, deploy("test-web", "["+app+"]"), deploy("test-web", "["+nginx+","+nginx+","+app+"]"), []int{0}},
		{"other name", grDeploy, deploy("web", "["+app+"]"), "", nil},
	})
}

func TestVeleroMergePatch(t *testing.T) {
	pod := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: NS\n  annotations: {foo: x, keep: y}\nspec:\n  containers: [{name: c, image: i}]\n"
	runCases(t, load(t, "velero-merge.yaml"), []applyCase{
		{"annotation removed", grPod, strings.Replace(pod, "NS", "ns1", 1),
			strings.Replace(strings.Replace(pod, "NS", "ns1", 1), "{foo: x, keep: y}", "{keep: y}", 1), []int{0}},
		{"other namespace", grPod, strings.Replace(pod, "NS", "ns2", 1), "", nil},
	})
}

func TestVeleroStrategicPatch(t *testing.T) {
	pod := func(name, image string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", namespace: ns1}\nspec:\n  containers:\n  - {name: nginx, image: " + image + "}\n  - {name: sidecar, image: side:1}\n"
	}
	runCases(t, load(t, "velero-strategic.yaml"), []applyCase{
		// Strategic: the container list is merged by name, the sidecar stays.
		{"image replaced by name", grPod, pod("my-pod", "repo1/nginx"), pod("my-pod", "repo2/nginx"), []int{0}},
		{"other pod", grPod, pod("my-pod-2", "repo1/nginx"), "", nil},
	})
}

func TestVeleroMatches(t *testing.T) {
	// As documented, the example names persistentvolumeclaims.storage.k8s.io,
	// which is not the group claims are in: in Velero it changes no claim,
	// and here neither.
	runCases(t, load(t, "velero-matches.yaml"), []applyCase{
		{"documented group matches no claim", grPVC, pvc("a", "x", "premium", ""), "", nil},
	})
	fixed, err := Parse([]byte(strings.Replace(mustRead(t, "testdata/velero-matches.yaml"), "persistentvolumeclaims.storage.k8s.io", "persistentvolumeclaims", 1)))
	if err != nil {
		t.Fatal(err)
	}
	runCases(t, fixed, []applyCase{
		{"premium claim", grPVC, pvc("a", "x", "premium", ""),
			strings.Replace(pvc("a", "x", "premium", ""), "{foo: x, keep: y}", "{keep: y}", 1), []int{0}},
		{"standard claim", grPVC, pvc("a", "x", "standard", ""), "", nil},
	})
}

func TestVeleroConfigMap(t *testing.T) {
	d := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: NS\n  labels: {app: web}\nspec:\n  replicas: 3\n"
	runCases(t, load(t, "velero-configmap.yaml"), []applyCase{
		{"replicas and label", grDeploy, strings.Replace(d, "NS", "bar", 1),
			strings.Replace(strings.Replace(strings.Replace(d, "NS", "bar", 1), "replicas: 3", "replicas: 1", 1), "{app: web}", "{app: web, environment: development}", 1), []int{0}},
		{"other namespace", grDeploy, strings.Replace(d, "NS", "foo", 1), "", nil},
	})
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	r, err := Load(p) // checks it parses
	if err != nil || r == nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWildcardsAndClusterScope(t *testing.T) {
	r, err := Parse([]byte(`version: v1
resourceModifierRules:
- conditions: {groupResource: "*.apps", namespaces: [prod-*]}
  patches: [{operation: add, path: /metadata/labels/apps, value: "yes"}]
- conditions: {groupResource: "*", namespaces: [prod-*]}
  patches: [{operation: add, path: /metadata/labels/core, value: "yes"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	d := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: NS, labels: {a: b}}\n"
	pv := "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: v, labels: {a: b}}\n"
	runCases(t, r, []applyCase{
		{"apps in prod", grDeploy, strings.Replace(d, "NS", "prod-1", 1), strings.Replace(strings.Replace(d, "NS", "prod-1", 1), "{a: b}", "{a: b, apps: 'yes'}", 1), []int{0}},
		{"apps elsewhere", grDeploy, strings.Replace(d, "NS", "dev", 1), "", nil},
		// Cluster-scoped objects have no namespace to fail the condition.
		{"core cluster-scoped", grPV, pv, strings.Replace(pv, "{a: b}", "{a: b, core: 'yes'}", 1), []int{1}},
	})
}

func TestConditionsSeeTheObjectAsGiven(t *testing.T) {
	// The second rule selects on a label the first rule adds: as in
	// Velero, conditions are judged on the object before any rule.
	r, err := Parse([]byte(`version: v1
resourceModifierRules:
- conditions: {groupResource: pods}
  mergePatches: [{patchData: "metadata: {labels: {tier: gold}}"}]
- conditions: {groupResource: pods, labelSelector: {matchLabels: {tier: gold}}}
  mergePatches: [{patchData: {metadata: {labels: {second: "yes"}}}}]
- conditions: {groupResource: pods, labelSelector: {matchExpressions: [{key: tier, operator: DoesNotExist}]}}
  patches: [{operation: add, path: /metadata/labels/third, value: "yes"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	p := "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: n, labels: {a: b}}\n"
	runCases(t, r, []applyCase{
		{"later rules see the original", grPod, p, strings.Replace(p, "{a: b}", "{a: b, tier: gold, third: 'yes'}", 1), []int{0, 2}},
	})
}

func TestApplyErrors(t *testing.T) {
	widget := "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: n}\nspec: {size: 1, parts: [a, b]}\n"
	for _, tc := range []struct {
		name, rules, in string
		gr              schema.GroupResource
		want            string
	}{
		{"strategic on a custom resource", "strategicPatches: [{patchData: 'spec: {size: 2}'}]", widget, grWidget,
			"strategicPatches need a built-in kind and example.com/v1 Widget is not one cairn knows: use mergePatches"},
		{"missing path", "patches: [{operation: replace, path: /spec/nothing, value: x}]", widget, grWidget,
			"patches[0] (replace /spec/nothing)"},
		{"kind changed", "patches: [{operation: replace, path: /kind, value: Gadget}]", widget, grWidget,
			"the patches change example.com/v1 Widget to example.com/v1 Gadget"},
		{"group changed", "mergePatches: [{patchData: 'apiVersion: other.io/v1'}]", widget, grWidget,
			"only the version may change"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte("version: v1\nresourceModifierRules:\n- conditions: {groupResource: '**'}\n  " + tc.rules + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			u := obj(t, tc.in)
			before := u.DeepCopy()
			_, err = r.Apply(u, tc.gr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply = %v, want an error with %q", err, tc.want)
			}
			if !reflect.DeepEqual(u.Object, before.Object) {
				t.Errorf("a failed Apply changed the object")
			}
		})
	}
	// A merge patch works on custom resources; a version change is allowed.
	r, err := Parse([]byte(`version: v1
resourceModifierRules:
- conditions: {groupResource: widgets.example.com}
  mergePatches:
  - patchData: |
      apiVersion: example.com/v2
      spec: {parts: [c]}
`))
	if err != nil {
		t.Fatal(err)
	}
	runCases(t, r, []applyCase{{"merge on a custom resource", grWidget, widget,
		strings.Replace(strings.Replace(widget, "[a, b]", "[c]", 1), "/v1", "/v2", 1), []int{0}}})
}

func TestMissingPathsDoNotMatch(t *testing.T) {
	// A test operation or a matches entry on a path the object lacks
	// skips the rule; it is not an error.
	r, err := Parse([]byte(`version: v1
resourceModifierRules:
- conditions: {groupResource: pods}
  patches:
  - {operation: test, path: /spec/nodeSelector/zone, value: a}
  - {operation: add, path: /metadata/labels/one, value: "1st"}
- conditions:
    groupResource: pods
    matches: [{path: /spec/containers/3/image, value: x}]
  patches: [{operation: add, path: /metadata/labels/two, value: "2nd"}]
- conditions:
    groupResource: pods
    matches: [{path: /spec/containers/0/image, value: i}, {path: /metadata/name, value: p}]
  patches: [{operation: add, path: /metadata/labels/three, value: "3rd"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	p := "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: n, labels: {a: b}}\nspec:\n  containers: [{name: c, image: i}]\n"
	u := obj(t, p)
	out, err := r.Apply(u, grPod)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Matched, []int{0, 2}) || !reflect.DeepEqual(out.Applied, []int{2}) {
		t.Errorf("outcome %+v, want matched [0 2], applied [2]", out)
	}
	if l := u.GetLabels(); !reflect.DeepEqual(l, map[string]string{"a": "b", "three": "3rd"}) {
		t.Errorf("labels %v", l)
	}
}
