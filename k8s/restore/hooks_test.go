package restore

import (
	"testing"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestAddInitHook(t *testing.T) {
	for _, tc := range []struct {
		name  string
		inits []any
		want  []string
	}{
		{name: "no init containers", want: []string{"seed"}},
		{name: "after restore-wait, before the pod's own", inits: []any{
			map[string]any{"name": volapi.RestoreWaitContainer}, map[string]any{"name": "migrate"}},
			want: []string{volapi.RestoreWaitContainer, "seed", "migrate"}},
		{name: "an earlier restore's copy replaced", inits: []any{
			map[string]any{"name": "migrate"}, map[string]any{"name": "seed", "image": "old"}},
			want: []string{"seed", "migrate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "p", "namespace": "ns",
				"annotations": map[string]any{"init.hook.restore.velero.io/container-image": "busybox",
					"init.hook.restore.velero.io/container-name": "seed", "init.hook.restore.velero.io/command": `["true"]`}},
				"spec": map[string]any{}}}
			if tc.inits != nil {
				_ = unstructured.SetNestedSlice(obj.Object, tc.inits, "spec", "initContainers")
			}
			rs := &restorer{res: &RestoreResult{}}
			rs.addInitHook(&restoreItem{obj: obj})
			got, _, _ := unstructured.NestedSlice(obj.Object, "spec", "initContainers")
			var names []string
			for _, c := range got {
				names = append(names, c.(map[string]any)["name"].(string))
			}
			if len(names) != len(tc.want) {
				t.Fatalf("init containers %v, want %v", names, tc.want)
			}
			for i := range names {
				if names[i] != tc.want[i] {
					t.Fatalf("init containers %v, want %v", names, tc.want)
				}
			}
			for _, c := range got {
				if m := c.(map[string]any); m["name"] == "seed" && m["image"] != "busybox" {
					t.Errorf("seed %v", m)
				}
			}
			if len(rs.res.Hooks) != 1 || rs.res.Hooks[0].Result != layout.HookAdded {
				t.Errorf("hooks %+v", rs.res.Hooks)
			}
		})
	}
}
