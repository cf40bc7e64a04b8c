package install

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/tests/cluster"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

func connect(t *testing.T) *kube.Clients {
	t.Helper()
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: cluster.NeedShared(t).Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// resourceVersions reads every object of an install: its generation
// where it has one (the DaemonSet controller writes status, which changes
// the resourceVersion but not what install made), else its
// resourceVersion.
func resourceVersions(t *testing.T, dyn dynamic.Interface, o Options) map[string]string {
	t.Helper()
	objs, err := Objects(o)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, u := range objs {
		live, err := ResourceFor(dyn, u).Get(t.Context(), u.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v", Describe(u), err)
		}
		out[Describe(u)] = live.GetResourceVersion()
		if g := live.GetGeneration(); g > 0 {
			out[Describe(u)] = fmt.Sprint("generation ", g)
		}
	}
	return out
}

// The rendered YAML is what the API server accepts (strict field
// validation, server-side dry run), as `kubectl apply --dry-run=server`
// would send it.
func TestRenderedYAMLServerDryRun(t *testing.T) {
	cl := connect(t)
	o := s3Options()
	o.Namespace = "cairn-dry"
	objs, err := Objects(o)
	if err != nil {
		t.Fatal(err)
	}
	y, err := Render(objs, "yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := cluster.Objects(t, string(y))
	if len(docs) != len(objs) {
		t.Fatalf("%d documents for %d objects", len(docs), len(objs))
	}
	// A dry-run namespace is not there for the objects in it.
	if _, err := ResourceFor(cl.Dynamic, docs[0]).Apply(t.Context(), docs[0].GetName(), docs[0], metav1.ApplyOptions{FieldManager: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs[1:] {
		_, err := ResourceFor(cl.Dynamic, d).Apply(t.Context(), d.GetName(), d, metav1.ApplyOptions{
			FieldManager: "test", DryRun: []string{metav1.DryRunAll}, Force: true})
		if err != nil {
			t.Errorf("%s: %v", Describe(d), err)
		}
	}
}

// Install creates everything; a second install writes nothing; changed
// options update the DaemonSet (and drop fields no longer set); uninstall
// removes it all but the CRDs, and --crds those too.
func TestInstallUpdateUninstall(t *testing.T) {
	cl := connect(t)
	ctx := t.Context()
	o := s3Options()
	o.Namespace = "cairn-it"
	var applied []string
	if err := Apply(ctx, cl.Dynamic, o, false, func(u *unstructured.Unstructured) { applied = append(applied, Describe(u)) }); err != nil {
		t.Fatal(err)
	}
	first := resourceVersions(t, cl.Dynamic, o)
	if len(applied) != len(first) {
		t.Errorf("applied %v", applied)
	}
	if err := Apply(ctx, cl.Dynamic, o, false, nil); err != nil {
		t.Fatal(err)
	}
	for name, rv := range resourceVersions(t, cl.Dynamic, o) {
		if first[name] != rv {
			t.Errorf("second install changed %s (%s -> %s)", name, first[name], rv)
		}
	}

	o.Image, o.Privileged = "example/cairn:2", true
	if err := Apply(ctx, cl.Dynamic, o, false, nil); err != nil {
		t.Fatal(err)
	}
	ds, err := cl.Dynamic.Resource(resources["DaemonSet"]).Namespace(o.Namespace).Get(ctx, AgentName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "containers")
	c := cs[0].(map[string]any)
	sc := c["securityContext"].(map[string]any)
	if c["image"] != "example/cairn:2" || sc["privileged"] != true || sc["capabilities"] != nil {
		t.Errorf("after update: image %v, security context %v", c["image"], sc)
	}

	// Switching to a Secret of the user's drops the one install made.
	o2 := o
	o2.Repository, o2.ExistingSecret = nil, "users-secret"
	if err := Apply(ctx, cl.Dynamic, o2, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Dynamic.Resource(resources["Secret"]).Namespace(o.Namespace).Get(ctx, SecretName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("old Secret left: %v", err)
	}
	if err := Apply(ctx, cl.Dynamic, o, false, nil); err != nil {
		t.Fatal(err)
	}

	var deleted []string
	if err := Uninstall(ctx, cl.Dynamic, UninstallOptions{Namespace: o.Namespace}, func(u *unstructured.Unstructured) { deleted = append(deleted, Describe(u)) }); err != nil {
		t.Fatal(err)
	}
	objs, _ := Objects(o)
	var gone []*unstructured.Unstructured
	for _, u := range objs {
		if isCRD(u) {
			if _, err := ResourceFor(cl.Dynamic, u).Get(ctx, u.GetName(), metav1.GetOptions{}); err != nil {
				t.Errorf("uninstall without CRDs: %s: %v", Describe(u), err)
			}
			continue
		}
		gone = append(gone, u)
	}
	if len(deleted) != len(gone) {
		t.Errorf("deleted %v", deleted)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := WaitGone(wctx, cl.Dynamic, gone); err != nil {
		t.Fatal(err)
	}
	// Again: nothing left to do.
	deleted = nil
	if err := Uninstall(ctx, cl.Dynamic, UninstallOptions{Namespace: o.Namespace, CRDs: true}, func(u *unstructured.Unstructured) { deleted = append(deleted, Describe(u)) }); err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 2 || !strings.Contains(deleted[0], "customresourcedefinition") {
		t.Errorf("--crds deleted %v", deleted)
	}
}

// Installed into a namespace the user had, with a Secret the user made:
// uninstall leaves both (and what else the namespace holds).
func TestUninstallKeepsUsersObjects(t *testing.T) {
	cl := connect(t)
	ctx := t.Context()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "users-ns"}}}
	if _, err := ResourceFor(cl.Dynamic, ns).Create(ctx, ns, metav1.CreateOptions{FieldManager: "kubectl-create"}); err != nil {
		t.Fatal(err)
	}
	sec := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "mine", "namespace": "users-ns"}, "stringData": map[string]any{EnvRepository: "s3:x", EnvPassword: "p"}}}
	if _, err := ResourceFor(cl.Dynamic, sec).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	o := Options{Namespace: "users-ns", Image: "example/cairn:1", ExistingSecret: "mine"}
	if err := Apply(ctx, cl.Dynamic, o, false, nil); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	if err := Uninstall(ctx, cl.Dynamic, UninstallOptions{Namespace: "users-ns"}, func(u *unstructured.Unstructured) { deleted = append(deleted, Describe(u)) }); err != nil {
		t.Fatal(err)
	}
	for _, d := range deleted {
		if strings.HasPrefix(d, "namespace/") || strings.HasPrefix(d, "secret/") {
			t.Errorf("deleted the user's %s", d)
		}
	}
	for _, u := range []*unstructured.Unstructured{ns, sec} {
		live, err := ResourceFor(cl.Dynamic, u).Get(ctx, u.GetName(), metav1.GetOptions{})
		if err != nil || live.GetDeletionTimestamp() != nil {
			t.Errorf("%s: %v", Describe(u), err)
		}
	}
	if _, err := cl.Dynamic.Resource(resources["DaemonSet"]).Namespace("users-ns").Get(ctx, AgentName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("DaemonSet left: %v", err)
	}
}

var ssarResource = schema.GroupVersionResource{Group: "authorization.k8s.io", Version: "v1", Resource: "selfsubjectaccessreviews"}

// can asks the API server whether the impersonated account may do verb
// on resource[/sub] ("group/resource/sub" with an empty group for core).
func can(t *testing.T, dyn dynamic.Interface, verb, group, resource, sub, ns string) bool {
	t.Helper()
	attrs := map[string]any{"verb": verb, "group": group, "resource": resource}
	if sub != "" {
		attrs["subresource"] = sub
	}
	if ns != "" {
		attrs["namespace"] = ns
	}
	review := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
		"spec": map[string]any{"resourceAttributes": attrs}}}
	out, err := dyn.Resource(ssarResource).Create(t.Context(), review, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	allowed, _, _ := unstructured.NestedBool(out.Object, "status", "allowed")
	return allowed
}

// The RBAC an install makes is enough for what the agent, a backup and a
// restore call, and no more: asked of the API server as each
// ServiceAccount.
func TestInstalledRBAC(t *testing.T) {
	cl := connect(t)
	ctx := t.Context()
	o := s3Options()
	o.Namespace = "cairn-rbac"
	if err := Apply(ctx, cl.Dynamic, o, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Uninstall(context.Background(), cl.Dynamic, UninstallOptions{Namespace: o.Namespace}, nil) })
	as := func(sa string) dynamic.Interface {
		cfg := rest.CopyConfig(cl.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + o.Namespace + ":" + sa}
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return dyn
	}
	type check struct {
		verb, group, resource, sub, ns string
		want                           bool
	}
	ns := o.Namespace
	for sa, checks := range map[string][]check{
		AgentName: {
			{"watch", "cairn.io", "volumebackups", "", ns, true},
			{"list", "cairn.io", "volumerestores", "", ns, true},
			{"update", "cairn.io", "volumebackups", "status", ns, true},
			{"update", "cairn.io", "volumerestores", "status", ns, true},
			{"update", "cairn.io", "volumerestores", "", ns, true},
			{"watch", "", "pods", "", "", true},
			{"get", "", "persistentvolumeclaims", "", "app", true},
			{"update", "cairn.io", "volumebackups", "", ns, false},
			{"delete", "cairn.io", "volumebackups", "", ns, false},
			{"create", "cairn.io", "volumebackups", "", ns, false},
			{"list", "cairn.io", "volumebackups", "", "elsewhere", false},
			{"get", "", "secrets", "", ns, false},
			{"create", "", "secrets", "", "app", false},
			{"create", "", "pods", "", "app", false},
			{"create", "", "pods", "exec", "app", false},
			{"list", "", "persistentvolumeclaims", "", "app", false},
		},
		ServerName: {
			// backup: read everything, its items, hooks
			{"list", "", "secrets", "", "kube-system", true},
			{"list", "apiextensions.k8s.io", "customresourcedefinitions", "", "", true},
			{"watch", "example.com", "gadgets", "", "app", true},
			{"create", "cairn.io", "volumebackups", "", ns, true},
			{"deletecollection", "cairn.io", "volumebackups", "", ns, true},
			{"create", "", "pods", "exec", "app", true},
			// restore: create, update, patch anything, status, RBAC
			{"create", "", "namespaces", "", "", true},
			{"create", "apps", "deployments", "", "app", true},
			{"update", "apps", "deployments", "status", "app", true},
			{"patch", "", "services", "", "app", true},
			{"update", "", "pods", "ephemeralcontainers", "app", true},
			{"create", "cairn.io", "volumerestores", "", ns, true},
			{"escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", true},
			{"bind", "rbac.authorization.k8s.io", "clusterroles", "", "", true},
			// never delete
			{"delete", "", "namespaces", "", "", false},
			{"delete", "", "secrets", "", "app", false},
			{"deletecollection", "", "pods", "", "app", false},
			{"delete", "cairn.io", "volumebackups", "", ns, false},
			{"deletecollection", "cairn.io", "volumebackups", "", "elsewhere", false},
			{"impersonate", "", "users", "", "", false},
		},
	} {
		dyn := as(sa)
		for _, c := range checks {
			if got := can(t, dyn, c.verb, c.group, c.resource, c.sub, c.ns); got != c.want {
				t.Errorf("%s: %s %s/%s/%s in %q: allowed %v, want %v", sa, c.verb, c.group, c.resource, c.sub, c.ns, got, c.want)
			}
		}
	}
}

// The control-plane backup example in deploy/examples is a CronJob the
// API server accepts (strict server-side dry run) that runs `cairn etcd
// snapshot` and `cairn backup /etc/kubernetes` with install's Secret and
// cairn's image.
func TestControlPlaneExample(t *testing.T) {
	cl := connect(t)
	buf, err := os.ReadFile("../../deploy/examples/control-plane-backup.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := cluster.Objects(t, string(buf))
	if len(docs) != 1 || docs[0].GetKind() != "CronJob" {
		t.Fatalf("want one CronJob, got %d documents", len(docs))
	}
	cj := docs[0]
	ns := "cairn-example"
	nsObj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
	if _, err := ResourceFor(cl.Dynamic, nsObj).Apply(t.Context(), ns, nsObj, metav1.ApplyOptions{FieldManager: "test"}); err != nil {
		t.Fatal(err)
	}
	cj.SetNamespace(ns)
	cronJobs := cl.Dynamic.Resource(schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}).Namespace(ns)
	if _, err := cronJobs.Apply(t.Context(), cj.GetName(), cj, metav1.ApplyOptions{
		FieldManager: "test", DryRun: []string{metav1.DryRunAll}, Force: true}); err != nil {
		t.Fatalf("the API server refuses the example: %v", err)
	}
	spec, _, _ := unstructured.NestedMap(cj.Object, "spec", "jobTemplate", "spec", "template", "spec")
	var steps [][]string
	for _, key := range []string{"initContainers", "containers"} {
		cs, _ := spec[key].([]any)
		for _, c := range cs {
			m := c.(map[string]any)
			if img, _ := m["image"].(string); !strings.HasPrefix(img, ImageRepository+":") {
				t.Errorf("%s runs %q, not cairn's image", m["name"], img)
			}
			if s := fmt.Sprint(m["envFrom"]); !strings.Contains(s, SecretName) {
				t.Errorf("%s does not read install's Secret %s: %s", m["name"], SecretName, s)
			}
			var args []string
			for _, a := range m["args"].([]any) {
				args = append(args, a.(string))
			}
			steps = append(steps, args)
		}
	}
	if len(steps) != 2 || strings.Join(steps[0][:2], " ") != "etcd snapshot" || strings.Join(steps[1][:2], " ") != "backup /etc/kubernetes" {
		t.Errorf("steps %q, want the etcd snapshot, then the files", steps)
	}
}

// `uninstall --crds` then `install` at once: the CRDs are still being
// deleted (their custom resources go first). The install waits them out
// and ends with CRDs that are established, not terminating, instead of
// updating the dying objects and waiting forever for them to be served
// (a full CI run once hung here for 40 minutes).
func TestInstallRightAfterUninstallCRDs(t *testing.T) {
	cl := connect(t)
	// Namespace and CRD deletions make discovery flap, and the namespace
	// controller backs off: under load one round has taken over a minute.
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	o := Options{Namespace: "reinstall-ns", Image: "example/cairn:1", Repository: &Repository{Location: "s3:x", Password: "p"}}
	if err := Apply(ctx, cl.Dynamic, o, false, nil); err != nil {
		t.Fatal(err)
	}
	// A custom resource makes the CRD's deletion take a while.
	vb := volapi.NewVolumeBackup(o.Namespace, volapi.VolumeBackupSpec{Node: "n", Pod: volapi.PodRef{Namespace: "a", Name: "p", UID: "u"}, Volume: "v",
		Repository: volapi.RepositoryRef{ID: "abcd"}, BackupName: "b"})
	if uv, err := vb.ToUnstructured(); err != nil {
		t.Fatal(err)
	} else if _, err := cl.Dynamic.Resource(volapi.VolumeBackupResource).Namespace(o.Namespace).Create(ctx, uv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := Uninstall(ctx, cl.Dynamic, UninstallOptions{Namespace: o.Namespace, CRDs: true}, nil); err != nil {
			t.Fatal(err)
		}
		if err := Apply(ctx, cl.Dynamic, o, false, nil); err != nil {
			t.Fatal(err)
		}
		crds, _ := volapi.CRDs()
		for _, c := range crds {
			live, err := cl.Dynamic.Resource(volapi.CRDResource).Get(ctx, c.Obj.GetName(), metav1.GetOptions{})
			if err != nil || live.GetDeletionTimestamp() != nil {
				t.Fatalf("after reinstall: %s: %v, deleting %v", c.Obj.GetName(), err, err == nil && live.GetDeletionTimestamp() != nil)
			}
		}
	}
	if err := Uninstall(ctx, cl.Dynamic, UninstallOptions{Namespace: o.Namespace}, nil); err != nil {
		t.Fatal(err)
	}
}
