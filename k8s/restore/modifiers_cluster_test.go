package restore

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/modifiers"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The rules name the backup's namespace (rt-mod), not the mapped one, as
// in Velero. Rule 0 is Velero's documented template, rule 1 a merge patch,
// rule 2 Velero's documented strategic patch, rule 3 fails its item, rule
// 4 matches nothing.
const modRules = `
version: v1
resourceModifierRules:
- conditions:
     groupResource: persistentvolumeclaims
     resourceNameRegex: "^mysql.*$"
     namespaces:
     - rt-mod
     labelSelector:
        matchLabels:
           foo: bar
  patches:
  - operation: replace
    path: "/spec/storageClassName"
    value: "premium"
  - operation: remove
    path: "/metadata/labels/test"
- conditions:
    groupResource: configmaps
    namespaces: [rt-mod]
  mergePatches:
  - patchData: |
      data:
        mode: restored
        old: null
- conditions:
    groupResource: pods
    resourceNameRegex: "^my-pod$"
    namespaces:
    - rt-mod
  strategicPatches:
  - patchData: |
      {
        "spec": {
          "containers": [
            {
              "name": "nginx",
              "image": "repo2/nginx"
            }
          ]
        }
      }
- conditions:
    groupResource: secrets
    namespaces: [rt-mod]
  patches:
  - operation: replace
    path: /data/missing
    value: eA==
- conditions:
    groupResource: persistentvolumeclaims.storage.k8s.io
  mergePatches:
  - patchData: "metadata: {annotations: {never: applied}}"
`

// TestRestoreResourceModifiers restores objects through a JSON patch, a
// merge patch and a strategic patch into a mapped namespace; objects the
// rules do not select stay as backed up, a failing patch fails its item
// and a rule that matches nothing is warned about.
func TestRestoreResourceModifiers(t *testing.T) {
	cl := rtConnect(t)
	rtCleanup(t, cl, "rt-mod-copy")
	files := map[string][]byte{}
	for _, doc := range []struct {
		gr  schema.GroupResource
		yml string
	}{
		{grPVC, `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: mysql-data, namespace: rt-mod, labels: {foo: bar, test: x}}
spec: {storageClassName: standard, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`},
		{grPVC, `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: pg-data, namespace: rt-mod, labels: {foo: bar, test: x}}
spec: {storageClassName: standard, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`},
		{schema.GroupResource{Resource: "configmaps"}, `
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: rt-mod}
data: {mode: backup, old: "1", keep: "yes"}
`},
		{grPod, `
apiVersion: v1
kind: Pod
metadata: {name: my-pod, namespace: rt-mod}
spec:
  containers:
  - {name: nginx, image: repo1/nginx}
  - {name: sidecar, image: "registry.invalid/side:1"}
`},
		{grPod, `
apiVersion: v1
kind: Pod
metadata: {name: other-pod, namespace: rt-mod}
spec:
  containers:
  - {name: nginx, image: repo1/nginx}
`},
		{grSecret, `
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: rt-mod}
data: {user: eA==}
`},
	} {
		p, buf := rtManifest(t, doc.gr, obj(t, doc.yml))
		files[p] = buf
	}
	r := rtRepo(t)
	sn := rtWriteBackup(t, r, "rt-mod", files)
	rules, err := modifiers.Parse([]byte(modRules))
	if err != nil {
		t.Fatal(err)
	}
	res := rtRestore(t, r, sn, cl, RestoreOptions{
		NamespaceMappings: map[string]string{"rt-mod": "rt-mod-copy"}, Modifiers: rules,
	})
	items := rtItems(res)
	for key, reason := range map[string]string{
		"persistentvolumeclaims rt-mod-copy/mysql-data": "changed by resource modifier rule 0",
		"configmaps rt-mod-copy/settings":               "changed by resource modifier rule 1",
		"pods rt-mod-copy/my-pod":                       "changed by resource modifier rule 2",
		"persistentvolumeclaims rt-mod-copy/pg-data":    "",
		"pods rt-mod-copy/other-pod":                    "",
	} {
		rtWantAction(t, items, key, ActionCreated)
		if got := items[key].Reason; got != reason {
			t.Errorf("%s: reason %q, want %q", key, got, reason)
		}
	}
	if it := items["secrets rt-mod-copy/creds"]; it.Action != ActionFailed ||
		!strings.Contains(it.Reason, "resource modifier rule 3 (secrets): patches[0] (replace /data/missing)") || it.SourceNamespace != "rt-mod" {
		t.Errorf("secret: %+v, want failed by rule 3", it)
	}
	if rtGet(t, cl, gvrSecret, "rt-mod-copy", "creds") != nil {
		t.Error("the secret whose patch failed was restored")
	}

	// JSON patch: class replaced, label removed; the restore's labels stay.
	claim := rtGet(t, cl, gvrPVC, "rt-mod-copy", "mysql-data")
	if sc, _, _ := unstructured.NestedString(claim.Object, "spec", "storageClassName"); sc != "premium" {
		t.Errorf("mysql-data storage class %q, want premium", sc)
	}
	if l := claim.GetLabels(); l["test"] != "" || l["foo"] != "bar" || l["cairn.io/restore-name"] != res.Name {
		t.Errorf("mysql-data labels %v", l)
	}
	// Not selected (name): as backed up.
	other := rtGet(t, cl, gvrPVC, "rt-mod-copy", "pg-data")
	if sc, _, _ := unstructured.NestedString(other.Object, "spec", "storageClassName"); sc != "standard" || other.GetLabels()["test"] != "x" {
		t.Errorf("pg-data was changed: class %q labels %v", sc, other.GetLabels())
	}
	if _, ok := other.GetAnnotations()["never"]; ok {
		t.Error("rule 4 (wrong group) changed a claim")
	}
	// Merge patch: one key set, one removed, one kept.
	cm := rtGet(t, cl, gvrConfigMap, "rt-mod-copy", "settings")
	if data, _, _ := unstructured.NestedStringMap(cm.Object, "data"); !reflect.DeepEqual(data, map[string]string{"mode": "restored", "keep": "yes"}) {
		t.Errorf("settings data %v", data)
	}
	// Strategic patch: the nginx container's image by name, the sidecar kept.
	images := func(name string) []string {
		pod := rtGet(t, cl, gvrPod, "rt-mod-copy", name)
		cs, _, _ := unstructured.NestedSlice(pod.Object, "spec", "containers")
		var out []string
		for _, c := range cs {
			m := c.(map[string]any)
			out = append(out, m["name"].(string)+"="+m["image"].(string))
		}
		return out
	}
	if got := images("my-pod"); !reflect.DeepEqual(got, []string{"nginx=repo2/nginx", "sidecar=registry.invalid/side:1"}) {
		t.Errorf("my-pod containers %v", got)
	}
	if got := images("other-pod"); !reflect.DeepEqual(got, []string{"nginx=repo1/nginx"}) {
		t.Errorf("other-pod containers %v", got)
	}

	want := []ModifierUse{
		{Rule: "rule 0 (persistentvolumeclaims)", Matched: 1, Applied: 1},
		{Rule: "rule 1 (configmaps)", Matched: 1, Applied: 1},
		{Rule: "rule 2 (pods)", Matched: 1, Applied: 1},
		{Rule: "rule 3 (secrets)", Matched: 1, Applied: 0},
		{Rule: "rule 4 (persistentvolumeclaims.storage.k8s.io)", Matched: 0, Applied: 0},
	}
	if !reflect.DeepEqual(res.Modifiers, want) {
		t.Errorf("modifier uses %+v\nwant %+v", res.Modifiers, want)
	}
	warned := false
	for _, w := range res.Warnings {
		warned = warned || strings.Contains(w, "rule 4 (persistentvolumeclaims.storage.k8s.io) matched no restored object")
	}
	if !warned {
		t.Errorf("no warning for the rule that matched nothing: %q", res.Warnings)
	}
}
