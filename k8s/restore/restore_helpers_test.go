package restore

import (
	"bytes"
	"context"
	"os"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/cairn-backup/cairn/tests/cluster"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// Helpers for the restore tests, prefixed "rt".

func rtRepo(t testing.TB) *repo.Repository {
	t.Helper()
	be, err := repo.CreateLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, "restore-test", 2, repo.Options{KDF: crypto.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func rtConnect(t testing.TB) *kube.Clients {
	t.Helper()
	c := cluster.NeedShared(t)
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: c.Kubeconfig, QPS: 1000, Burst: 2000})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// rtWriteBackup writes files (snapshot path -> content) as a backup
// snapshot tagged backup=<name>, the way a cluster backup lays them out.
func rtWriteBackup(t testing.TB, r *repo.Repository, name string, files map[string][]byte) *snapshot.Snapshot {
	t.Helper()
	ctx := context.Background()
	type dir struct {
		dirs  map[string]*dir
		files map[string][]byte
	}
	newDir := func() *dir { return &dir{dirs: map[string]*dir{}, files: map[string][]byte{}} }
	root := newDir()
	if _, ok := files["/"+layout.BackupInfoFile]; !ok {
		files["/"+layout.BackupInfoFile] = []byte(`{"name":"` + name + `","cluster":"cairn-test","phase":"Completed"}`)
	}
	for p, data := range files {
		d := root
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		for _, c := range parts[:len(parts)-1] {
			if d.dirs[c] == nil {
				d.dirs[c] = newDir()
			}
			d = d.dirs[c]
		}
		d.files[parts[len(parts)-1]] = data
	}
	a := archiver.NewArchiver(r, archiver.ArchiveOptions{Tags: []string{layout.TagBackup + name}, Hostname: "cairn-test"})
	now := time.Now()
	var save func(d *dir) repo.ID
	save = func(d *dir) repo.ID {
		tree := &snapshot.Tree{}
		for n, sub := range d.dirs {
			id := save(sub)
			tree.Nodes = append(tree.Nodes, &snapshot.Node{Name: n, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755, ModTime: now, Subtree: &id})
		}
		for n, data := range d.files {
			content, size, err := a.SaveReader(ctx, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			tree.Nodes = append(tree.Nodes, &snapshot.Node{Name: n, Type: snapshot.NodeFile, Mode: 0o644, ModTime: now, Size: size, Content: content})
		}
		id, err := a.SaveTree(ctx, tree)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	sn, err := a.Finish(ctx, save(root), []string{"/"})
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

// rtManifest is an object's path and YAML, as a backup stores it.
func rtManifest(t testing.TB, gr schema.GroupResource, o *unstructured.Unstructured) (string, []byte) {
	t.Helper()
	buf, err := yaml.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	return layout.ManifestPath(o.GetNamespace(), gr.Resource, gr.Group, o.GetName()), buf
}

// rtLiveFiles fetches everything in the namespaces and the named
// cluster-scoped objects, as a backup would store them.
func rtLiveFiles(t *testing.T, cl *kube.Clients, namespaces []string, cluster map[schema.GroupResource][]string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	files := map[string][]byte{}
	lists, err := cl.Discovery.ServerPreferredResources()
	if err != nil && len(lists) == 0 { // other tests' CRDs may come and go
		t.Fatal(err)
	}
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, res := range l.APIResources {
			if strings.Contains(res.Name, "/") || !slices.Contains(res.Verbs, "list") {
				continue
			}
			gvr := gv.WithResource(res.Name)
			gr := gvr.GroupResource()
			if res.Namespaced {
				for _, ns := range namespaces {
					ul, err := cl.Dynamic.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
					if apierrors.IsNotFound(err) && gr.Group != "" {
						continue // a CRD of another test, just deleted
					}
					if err != nil {
						t.Fatalf("list %s in %s: %v", gr, ns, err)
					}
					for i := range ul.Items {
						p, buf := rtManifest(t, gr, &ul.Items[i])
						files[p] = buf
					}
				}
				continue
			}
			names := cluster[gr]
			if gr == grNamespace {
				names = namespaces
			}
			for _, name := range names {
				o, err := cl.Dynamic.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					t.Fatalf("get %s %s: %v", gr, name, err)
				}
				p, buf := rtManifest(t, gr, o)
				files[p] = buf
			}
		}
	}
	return files
}

// rtApply creates the objects of a multi-document YAML.
func rtApply(t *testing.T, cl *kube.Clients, docs string) []*unstructured.Unstructured {
	t.Helper()
	ctx := context.Background()
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cl.Discovery))
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(docs, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		o := obj(t, doc)
		gvk := o.GroupVersionKind()
		var m *metaRESTMapping
		deadline := time.Now().Add(30 * time.Second)
		for {
			rm, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err == nil {
				m = &metaRESTMapping{rm.Resource, rm.Scope.Name() == "namespace"}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("map %v: %v", gvk, err)
			}
			mapper.Reset() // a CRD created just before
			time.Sleep(200 * time.Millisecond)
		}
		var ri dynamic.ResourceInterface = cl.Dynamic.Resource(m.gvr)
		if m.namespaced {
			ri = cl.Dynamic.Resource(m.gvr).Namespace(o.GetNamespace())
		}
		created, err := ri.Create(ctx, o, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create %v %s: %v", gvk, o.GetName(), err)
		}
		if st, ok := o.Object["status"]; ok {
			created.Object["status"] = st
			if created, err = ri.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
				t.Fatalf("status of %v %s: %v", gvk, o.GetName(), err)
			}
		}
		out = append(out, created)
	}
	return out
}

type metaRESTMapping struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}

// rtGet fetches a live object; nil when it does not exist.
func rtGet(t *testing.T, cl *kube.Clients, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	var ri dynamic.ResourceInterface = cl.Dynamic.Resource(gvr)
	if ns != "" {
		ri = cl.Dynamic.Resource(gvr).Namespace(ns)
	}
	o, err := ri.Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get %v %s/%s: %v", gvr, ns, name, err)
	}
	return o
}

// rtDeleteAndWait deletes objects and waits until they are gone.
func rtDeleteAndWait(t *testing.T, cl *kube.Clients, objs ...rtRef) {
	t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		err := rtResource(cl, o).Delete(ctx, o.name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("delete %v %s: %v", o.gvr, o.name, err)
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for _, o := range objs {
		for {
			_, err := rtResource(cl, o).Get(ctx, o.name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v %s still there after 90s (%v)", o.gvr, o.name, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// rtCleanup deletes namespaces when the test ends, without waiting.
func rtCleanup(t *testing.T, cl *kube.Clients, namespaces ...string) {
	t.Cleanup(func() {
		for _, ns := range namespaces {
			_ = cl.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).
				Delete(context.Background(), ns, metav1.DeleteOptions{})
		}
	})
}

type rtRef struct {
	gvr       schema.GroupVersionResource
	namespace string
	name      string
}

func rtResource(cl *kube.Clients, o rtRef) dynamic.ResourceInterface {
	if o.namespace != "" {
		return cl.Dynamic.Resource(o.gvr).Namespace(o.namespace)
	}
	return cl.Dynamic.Resource(o.gvr)
}

// rtNormalize strips what a restore legitimately changes (what the
// transforms strip, what the cluster allocates or controllers add) so that
// a restored object can be compared with the backed-up one.
func rtNormalize(o *unstructured.Unstructured, gr schema.GroupResource) map[string]any {
	o = o.DeepCopy()
	stripMetadata(o)
	delete(o.Object, "status")
	for _, f := range []string{"generateName"} {
		unstructured.RemoveNestedField(o.Object, "metadata", f)
	}
	labels := o.GetLabels()
	delete(labels, layout.LabelBackupName)
	delete(labels, layout.LabelRestoreName)
	if gr == grNamespace {
		delete(labels, "kubernetes.io/metadata.name")
	}
	if len(labels) == 0 {
		unstructured.RemoveNestedField(o.Object, "metadata", "labels")
	} else {
		o.SetLabels(labels)
	}
	switch gr {
	case grService:
		resetServiceAllocations(o, false)
	case grPVC:
		cleanPVC(o, true)
	case grPV:
		mapClaimRef(o, nil)
	case grPod:
		unstructured.RemoveNestedField(o.Object, "spec", "nodeName")
	case grSecret:
		cleanTokenSecret(o) // the cluster issues a new token
	}
	// Compared on their own (TestRestoreManagedFields): controllers add
	// entries as they write.
	unstructured.RemoveNestedField(o.Object, "metadata", "managedFields")
	if ann := o.GetAnnotations(); ann != nil {
		for _, a := range pvcBindingAnnotations {
			delete(ann, a)
		}
		delete(ann, "pv.kubernetes.io/bound-by-controller")
		setOrDropAnnotations(o, ann)
	}
	return o.Object
}

// rtEqual reports the difference between a backed-up and a restored object.
func rtEqual(t *testing.T, what string, gr schema.GroupResource, backed, restored *unstructured.Unstructured) {
	t.Helper()
	a, b := rtNormalize(backed, gr), rtNormalize(restored, gr)
	if !reflect.DeepEqual(a, b) {
		ya, _ := yaml.Marshal(a)
		yb, _ := yaml.Marshal(b)
		t.Errorf("%s differs after restore:\nbacked up:\n%s\nrestored:\n%s", what, ya, yb)
	}
}

// rtItems indexes a result's items by "resource ns/name".
func rtItems(res *RestoreResult) map[string]ItemResult {
	m := map[string]ItemResult{}
	for _, it := range res.Items {
		m[it.Resource+" "+path.Join(it.Namespace, it.Name)] = it
	}
	return m
}

func rtLogResult(t *testing.T, res *RestoreResult) {
	t.Helper()
	if res == nil {
		return
	}
	for _, it := range res.Items {
		if it.Action == ActionFailed || testing.Verbose() {
			t.Logf("%-14s %s %s %s", it.Action, it.Resource, itemName(it), it.Reason)
		}
	}
	for _, w := range res.Warnings {
		t.Logf("warning: %s", w)
	}
}
