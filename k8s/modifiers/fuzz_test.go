package modifiers

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// FuzzParse feeds arbitrary files to the parser; whatever it accepts is
// applied to a pod and a custom resource, which must not panic, and a
// failed Apply must leave the object as it was.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/velero-*.yaml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":"v1","resourceModifierRules":[{"conditions":{"groupResource":"**","matches":[{"path":"/spec/containers/0/name","value":"c"}]},"patches":[{"operation":"move","from":"/spec/containers/0","path":"/spec/initContainers"}]}]}`))
	f.Add([]byte("version: v1\nresourceModifierRules:\n- conditions: {groupResource: '{pods,*.example.com}', namespaces: ['n[a-z]']}\n  strategicPatches: [{patchData: 'spec: {containers: [{name: c, $patch: delete}]}'}]\n"))
	pod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p", "namespace": "n", "labels": map[string]any{"a": "b"}},
		"spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "i"}}}}
	cr := map[string]any{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w"},
		"spec": map[string]any{"size": int64(1)}}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		for _, o := range []struct {
			obj map[string]any
			gr  schema.GroupResource
		}{{pod, grPod}, {cr, grWidget}} {
			u := &unstructured.Unstructured{Object: runtime.DeepCopyJSON(o.obj)}
			before := u.DeepCopy()
			if _, err := r.Apply(u, o.gr); err != nil && !reflect.DeepEqual(u.Object, before.Object) {
				t.Fatalf("failed Apply changed the object: %v", err)
			}
		}
	})
}
