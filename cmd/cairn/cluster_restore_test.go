package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/restore"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/cairn-backup/cairn/tests/cluster"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// crStartCluster starts a control plane for this test; it skips when the
// binaries are missing (outside CI).
func crStartCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	bin, err := cluster.FindBinaries()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{BinDir: bin, Dir: filepath.Join(t.TempDir(), "cluster")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// crWriteBackup stores manifests (snapshot path -> YAML) as a backup
// snapshot named name in the test repository.
func crWriteBackup(t *testing.T, e *testEnv, name string, files map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	r := e.openRepo()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	a := archiver.NewArchiver(r, archiver.ArchiveOptions{Tags: []string{layout.TagBackup + name}, Hostname: "cairn-test"})
	// Manifests are at depth 4 or 5; build the trees bottom-up by directory.
	dirs := map[string][]*snapshot.Node{}
	var add func(dir string, n *snapshot.Node)
	add = func(dir string, n *snapshot.Node) {
		_, seen := dirs[dir]
		dirs[dir] = append(dirs[dir], n)
		if !seen && dir != "/" {
			add(filepath.Dir(dir), &snapshot.Node{Name: filepath.Base(dir), Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755})
		}
	}
	for p, data := range files {
		content, size, err := a.SaveReader(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		add(filepath.Dir(p), &snapshot.Node{Name: filepath.Base(p), Type: snapshot.NodeFile, Mode: 0o644, Size: size, Content: content})
	}
	var save func(dir string) repo.ID
	save = func(dir string) repo.ID {
		tree := &snapshot.Tree{}
		for _, n := range dirs[dir] {
			if n.Type == snapshot.NodeDir {
				id := save(filepath.Join(dir, n.Name))
				n.Subtree = &id
			}
			tree.Nodes = append(tree.Nodes, n)
		}
		id, err := a.SaveTree(ctx, tree)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	if _, err := a.Finish(ctx, save("/"), []string{"/"}); err != nil {
		t.Fatal(err)
	}
}

func crManifest(t *testing.T, gr schema.GroupResource, o *unstructured.Unstructured) (string, []byte) {
	t.Helper()
	buf, err := yaml.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	return layout.ManifestPath(o.GetNamespace(), gr.Resource, gr.Group, o.GetName()), buf
}

func crRestoreJSON(t *testing.T, res result) *restore.RestoreResult {
	t.Helper()
	var out restore.RestoreResult
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatalf("restore --json output does not parse: %v\n%s", err, res.stdout)
	}
	return &out
}

func TestClusterRestoreCLI(t *testing.T) {
	c := crStartCluster(t)
	e := newInitEnv(t)
	ctx := context.Background()
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: c.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	cmGVR := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	files := map[string][]byte{}
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "cli-app"}}}
	ns, err = cl.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, buf := crManifest(t, schema.GroupResource{Resource: "namespaces"}, ns)
	files[p] = buf
	for _, name := range []string{"a", "b"} {
		cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": name, "namespace": "cli-app", "labels": map[string]any{"cm": name}},
			"data":     map[string]any{"k": name}}}
		if cm, err = cl.Dynamic.Resource(cmGVR).Namespace("cli-app").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p, buf := crManifest(t, schema.GroupResource{Resource: "configmaps"}, cm)
		files[p] = buf
	}
	crWriteBackup(t, e, "cli-app", files)
	kc := "--kubeconfig=" + c.Kubeconfig

	// --json: the full result, exit 0.
	res := e.ok("cluster", "restore", "cli-app", kc, "--json", "--namespace-mappings", "cli-app:cli-copy", "--restore-name", "copy1")
	out := crRestoreJSON(t, res)
	if out.Phase != layout.PhaseCompleted || out.Name != "copy1" || out.Backup != "cli-app" || len(out.Items) != 3 {
		t.Fatalf("restore result: %+v", out)
	}
	for _, it := range out.Items {
		if it.Action != restore.ActionCreated || (it.Resource != "namespaces" && it.Namespace != "cli-copy") {
			t.Errorf("item %+v", it)
		}
	}
	got, err := cl.Dynamic.Resource(cmGVR).Namespace("cli-copy").Get(ctx, "b", metav1.GetOptions{})
	if err != nil || got.GetLabels()[layout.LabelRestoreName] != "copy1" {
		t.Fatalf("restored configmap: %v %v", got, err)
	}

	// The table; everything exists now.
	res = e.ok("cluster", "restore", "cli-app", kc, "--namespace-mappings=cli-app:cli-copy", "-l", "cm=a")
	for _, want := range []string{"restoring backup cli-app", "into cluster cairn-test", "Resource", "Existed", "configmaps", "0 created, 0 updated, 2 existed, 0 failed; 1 skipped", ": Completed"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("table output lacks %q:\n%s", want, res.stdout)
		}
	}

	// Dry run into a new namespace: reported, not done.
	res = e.ok("cluster", "restore", "cli-app", kc, "--namespace-mappings=cli-app:cli-dry", "--dry-run", "-v")
	if !strings.Contains(res.stdout, "created        configmaps cli-dry/a") || !strings.Contains(res.stdout, "dry run: nothing was changed") {
		t.Errorf("dry run output:\n%s", res.stdout)
	}
	if _, err := cl.Dynamic.Resource(cmGVR).Namespace("cli-dry").Get(ctx, "a", metav1.GetOptions{}); err == nil {
		t.Error("dry run created an object")
	}

	// Some manifests broken: exit 3, listed.
	bad := map[string][]byte{}
	for k, v := range files {
		bad[k] = v
	}
	bad[layout.ManifestPath("cli-app", "configmaps", "", "broken")] = []byte("data: [")
	crWriteBackup(t, e, "cli-bad", bad)
	res = e.run("cluster", "restore", "cli-bad", kc, "--namespace-mappings=cli-app:cli-bad")
	e.fails(exitPartial, res, "partially failed", "1 object could not be restored")
	if !strings.Contains(res.stdout, "failed:\n  configmaps cli-bad/broken: parse") {
		t.Errorf("failed objects not listed:\n%s", res.stdout)
	}

	// Nothing restorable: phase Failed, exit 1, JSON still printed.
	crWriteBackup(t, e, "cli-worse", map[string][]byte{layout.ManifestPath("x", "configmaps", "", "broken"): []byte("{")})
	res = e.run("cluster", "restore", "cli-worse", kc, "--json")
	e.fails(exitFailure, res, "restore cli-worse-", "failed", "broken")
	if out := crRestoreJSON(t, res); out.Phase != layout.PhaseFailed || out.Items[0].Action != restore.ActionFailed {
		t.Errorf("result %+v", out)
	}

	// By snapshot ID; a snapshot that is not a cluster backup is refused.
	id := e.snapshots("--tag", "backup=cli-app")[0]["short_id"].(string)
	res = e.ok("cluster", "restore", id, kc, "--dry-run", "--json")
	if out := crRestoreJSON(t, res); out.Backup != "cli-app" || !out.DryRun || out.Phase != layout.PhaseCompleted {
		t.Errorf("restore by ID: %+v", out)
	}
	e.ok("backup", e.makeData())
	for _, sn := range e.snapshots() {
		if tags, _ := sn["tags"].([]any); len(tags) == 0 {
			id = sn["short_id"].(string)
		}
	}
	e.fails(exitFailure, e.run("cluster", "restore", id, kc), "is not a cluster backup")

	// Mistakes are reported before anything happens.
	e.fails(exitFailure, e.run("cluster", "restore", "cli-app", kc, "--existing-resource-policy", "replace"), "--existing-resource-policy", "none or update")
	e.fails(exitFailure, e.run("cluster", "restore", "cli-app", kc, "--namespace-mappings", "nocolon"), "--namespace-mappings", "OLD:NEW")
	e.fails(exitFailure, e.run("cluster", "restore", "cli-app", kc, "--namespace-mappings", "cli-app:Bad_Name"), "not a valid namespace name")
	e.fails(exitFailure, e.run("cluster", "restore", "no-such-backup", kc), "no backup named \"no-such-backup\"")
	e.fails(exitFailure, e.run("cluster", "restore", "cli-app", "--kubeconfig=/nonexistent"), "kubeconfig")
}
