package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/restore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestClusterRestoreModifiersFailFast: a bad rule file is reported in one
// line before the repository's backups or the cluster are looked at.
func TestClusterRestoreModifiersFailFast(t *testing.T) {
	e := newInitEnv(t)
	bad := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(bad, []byte("version: v1\nresourceModifierRules:\n- conditions: {namespaces: [a]}\n  patches: [{operation: remove, path: /x}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := e.run("cluster", "restore", "no-such-backup", "--kubeconfig=/nonexistent", "--resource-modifiers", bad)
	e.fails(exitFailure, res, "--resource-modifiers: "+bad+": invalid resource modifiers: resourceModifierRules[0]: conditions.groupResource: required")
	res = e.run("cluster", "restore", "no-such-backup", "--kubeconfig=/nonexistent", "--resource-modifiers", bad+".missing")
	e.fails(exitFailure, res, "--resource-modifiers: open "+bad+".missing: no such file or directory")
}

// TestClusterRestoreModifiersCLI restores with the rules kept as a
// Velero ConfigMap manifest: the object is patched and the summary and
// the JSON result say what each rule did.
func TestClusterRestoreModifiersCLI(t *testing.T) {
	c := crStartCluster(t)
	e := newInitEnv(t)
	ctx := context.Background()
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: c.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	cmGVR := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "settings", "namespace": "cli-mod"}, "data": map[string]any{"mode": "backup"}}}
	p, buf := crManifest(t, schema.GroupResource{Resource: "configmaps"}, cm)
	crWriteBackup(t, e, "cli-mod", map[string][]byte{p: buf})
	rules := filepath.Join(t.TempDir(), "velero-cm.yaml")
	if err := os.WriteFile(rules, []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: restore-modifiers, namespace: velero}
data:
  modifiers.yaml: |
    version: v1
    resourceModifierRules:
    - conditions: {groupResource: configmaps, namespaces: [cli-mod]}
      patches:
      - {operation: replace, path: /data/mode, value: restored}
    - conditions: {groupResource: deployments.apps}
      mergePatches: [{patchData: "spec: {replicas: 0}"}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := "--kubeconfig=" + c.Kubeconfig

	res := e.ok("cluster", "restore", "cli-mod", kc, "--resource-modifiers", rules, "--namespace-mappings", "cli-mod:cli-mod-a")
	if !strings.Contains(res.stdout, "resource modifiers changed 1 object (rule 0 (configmaps): 1, rule 1 (deployments.apps): 0)") {
		t.Errorf("summary lacks the modifier line:\n%s", res.stdout)
	}
	if !strings.Contains(res.stderr, "rule 1 (deployments.apps) matched no restored object") {
		t.Errorf("no warning for the unused rule:\n%s", res.stderr)
	}
	got, err := cl.Dynamic.Resource(cmGVR).Namespace("cli-mod-a").Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mode, _, _ := unstructured.NestedString(got.Object, "data", "mode"); mode != "restored" {
		t.Errorf("restored configmap mode %q, want restored", mode)
	}

	out := crRestoreJSON(t, e.ok("cluster", "restore", "cli-mod", kc, "--json", "--dry-run", "--resource-modifiers", rules, "--namespace-mappings", "cli-mod:cli-mod-b"))
	want := []restore.ModifierUse{{Rule: "rule 0 (configmaps)", Matched: 1, Applied: 1}, {Rule: "rule 1 (deployments.apps)"}}
	if !reflect.DeepEqual(out.Modifiers, want) {
		t.Errorf("JSON modifiers %+v, want %+v", out.Modifiers, want)
	}
}
