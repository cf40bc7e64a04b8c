package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"
	"github.com/cairn-backup/cairn/tests/cluster"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Helpers of the backup tests (prefixed bt: the package's tests share
// one namespace of names).

const btPassword = "k8s-backup-test"

// btRepo makes a repository with a loaded (empty) index.
func btRepo(t testing.TB) (*repo.Repository, string) {
	t.Helper()
	dir := t.TempDir()
	be, err := repo.CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, btPassword, 2, repo.Options{KDF: crypto.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, dir
}

func btClients(t *testing.T, qps float32) *kube.Clients {
	t.Helper()
	c := cluster.NeedShared(t)
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: c.Kubeconfig, QPS: qps, Burst: int(2 * qps)})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// btSuffix is a random lower-case suffix for unique names.
func btSuffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// btApply creates the objects of a multi-document YAML (with NS and SFX
// replaced) and returns them as created, by "Kind/name". Cluster-scoped
// objects are deleted at the end of the test.
func btApply(t testing.TB, cl *kube.Clients, ns, sfx, manifests string) map[string]*unstructured.Unstructured {
	t.Helper()
	ctx := context.Background()
	d, err := kube.Discover(ctx, cl.Discovery)
	if err != nil {
		t.Fatal(err)
	}
	manifests = strings.NewReplacer("NS", ns, "SFX", sfx).Replace(manifests)
	out := map[string]*unstructured.Unstructured{}
	for _, obj := range cluster.Objects(t, manifests) {
		gv, _ := schema.ParseGroupVersion(obj.GetAPIVersion())
		i := slices.IndexFunc(d.Resources, func(r kube.Resource) bool { return r.Kind == obj.GetKind() && r.Group == gv.Group })
		if i < 0 {
			t.Fatalf("no resource for %s %s", obj.GetAPIVersion(), obj.GetKind())
		}
		r := d.Resources[i]
		gvr := schema.GroupVersionResource{Group: gv.Group, Version: gv.Version, Resource: r.Resource}
		var created *unstructured.Unstructured
		if r.Namespaced {
			created, err = cl.Dynamic.Resource(gvr).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{})
		} else {
			created, err = cl.Dynamic.Resource(gvr).Create(ctx, obj, metav1.CreateOptions{})
			name := obj.GetName()
			t.Cleanup(func() { cl.Dynamic.Resource(gvr).Delete(context.Background(), name, metav1.DeleteOptions{}) })
		}
		if err != nil {
			t.Fatalf("create %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
		out[obj.GetKind()+"/"+obj.GetName()] = created
	}
	return out
}

// btNamespace creates a namespace with labels; it is deleted at the end.
func btNamespace(t testing.TB, cl *kube.Clients, prefix string, labels map[string]string) string {
	t.Helper()
	name := prefix + "-" + btSuffix()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}}
	ns.SetLabels(labels)
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	if _, err := cl.Dynamic.Resource(gvr).Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Dynamic.Resource(gvr).Delete(context.Background(), name, metav1.DeleteOptions{}) })
	return name
}

// btWaitFor polls cond every 100ms until it is true or the limit passes.
func btWaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// btWaitCRD waits until a CRD is established and served by discovery.
func btWaitCRD(t testing.TB, cl *kube.Clients, name string) {
	t.Helper()
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	btWaitFor(t, 30*time.Second, "CRD "+name+" established", func() bool {
		crd, err := cl.Dynamic.Resource(gvr).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
				return true
			}
		}
		return false
	})
	btWaitFor(t, 30*time.Second, "CRD "+name+" discovered", func() bool {
		d, err := kube.Discover(context.Background(), cl.Discovery)
		if err != nil {
			return false
		}
		_, ok := d.Find(name)
		return ok
	})
}

// btTree returns every node of a snapshot by path.
func btTree(t testing.TB, r *repo.Repository, sn *snapshot.Snapshot) map[string]*snapshot.Node {
	t.Helper()
	nodes := map[string]*snapshot.Node{}
	err := snapshot.Walk(context.Background(), snapshot.NewTreeLoader(r, 64), *sn.Tree, func(p string, n *snapshot.Node) error {
		nodes[p] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

// btItems returns the manifest paths below dir ("/resources/cluster",
// "/resources/namespaces/NS") as "<resource dir>/<name>", sorted.
func btItems(nodes map[string]*snapshot.Node, dir string) []string {
	var out []string
	for p, n := range nodes {
		rest, ok := strings.CutPrefix(p, dir+"/")
		if ok && n.Type == snapshot.NodeFile && strings.Count(rest, "/") == 1 {
			out = append(out, strings.TrimSuffix(rest, ".yaml"))
		}
	}
	slices.Sort(out)
	return out
}

func btReadFile(t testing.TB, r *repo.Repository, n *snapshot.Node) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := browse.DumpFile(context.Background(), r, browse.NewBlobCache(r, 0), n, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// btManifest reads and decodes a manifest of the snapshot.
func btManifest(t testing.TB, r *repo.Repository, nodes map[string]*snapshot.Node, p string) *unstructured.Unstructured {
	t.Helper()
	n := nodes[p]
	if n == nil {
		t.Fatalf("%s is not in the backup", p)
	}
	objs := cluster.Objects(t, string(btReadFile(t, r, n)))
	if len(objs) != 1 {
		t.Fatalf("%s holds %d objects, want 1", p, len(objs))
	}
	return objs[0]
}

func btKeys(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
