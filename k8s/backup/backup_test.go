package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/cairn-backup/cairn/tests/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// btWorkload is an application namespace: NS and SFX are replaced.
const btWorkload = `
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: bt-sc-SFX}
provisioner: example.com/none
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: bt-unrelated-SFX}
provisioner: example.com/none
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: bt-pv-SFX}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: bt-sc-SFX
  hostPath: {path: /tmp/bt-SFX}
  claimRef: {namespace: NS, name: data}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: bt-sc-SFX
  volumeName: bt-pv-SFX
  resources: {requests: {storage: 1Gi}}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: bt-ic-SFX}
spec: {controller: example.com/ingress}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: bt-ic-SFX
  rules:
  - host: web.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {tier: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, labels: {tier: db}}
spec:
  serviceName: db-headless
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres:17}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], storageClassName: bt-sc-SFX, resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {tier: web}}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec: {type: NodePort, selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: db-headless}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config, labels: {tier: web}}
data: {greeting: hello}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: skip-me, labels: {cairn.io/exclude-from-backup: "true"}}
data: {secret: not really}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: hunter2}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app-sa}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: app-role}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: app-rb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: app-role}
subjects: [{kind: ServiceAccount, name: app-sa, namespace: NS}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: view-rb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: app-sa, namespace: NS}]
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.btSFX.example.com}
spec:
  group: btSFX.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: v1
kind: Pod
metadata: {name: lonely, labels: {tier: web}}
spec: {containers: [{name: c, image: busybox:1.36}]}
---
apiVersion: v1
kind: Event
metadata: {name: lonely.started}
involvedObject: {kind: Pod, name: lonely, namespace: NS}
reason: Testing
message: events are never backed up
`

const btWidgets = `
apiVersion: btSFX.example.com/v1
kind: Widget
metadata: {name: w1, labels: {tier: web}}
spec: {size: 3, color: blue}
---
apiVersion: btSFX.example.com/v1
kind: Widget
metadata: {name: w2}
spec: {size: 5}
`

func TestBackupNamespace(t *testing.T) {
	cl := btClients(t, 0)
	ctx := context.Background()
	ns := btNamespace(t, cl, "bt-app", nil)
	other := btNamespace(t, cl, "bt-other", nil)
	sfx := btSuffix()
	objs := btApply(t, cl, ns, sfx, btWorkload)
	btApply(t, cl, other, sfx, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: elsewhere}\n")
	crd := "widgets.bt" + sfx + ".example.com"
	btWaitCRD(t, cl, crd)
	for k, v := range btApply(t, cl, ns, sfx, btWidgets) {
		objs[k] = v
	}
	pvcGVR := schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
	btWaitFor(t, 30*time.Second, "claim bound", func() bool {
		pvc, err := cl.Dynamic.Resource(pvcGVR).Namespace(ns).Get(ctx, "data", metav1.GetOptions{})
		phase, _, _ := unstructured.NestedString(pvc.Object, "status", "phase")
		return err == nil && phase == "Bound"
	})

	epGVR := schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}
	btWaitFor(t, 30*time.Second, "endpoints of web", func() bool {
		_, err := cl.Dynamic.Resource(epGVR).Namespace(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil
	})

	r, repoDir := btRepo(t)
	var hookPods, hookPVCs []string
	hook := func(ctx context.Context, a *archiver.Archiver, in VolumeInput) (*repo.ID, []layout.VolumeInfo, error) {
		for _, p := range in.Pods {
			hookPods = append(hookPods, p.GetName())
		}
		for _, p := range in.PVCs {
			hookPVCs = append(hookPVCs, p.GetName())
		}
		in.Logf("volume hook ran")
		content, size, err := a.SaveReader(ctx, strings.NewReader("volume data\n"))
		if err != nil {
			return nil, nil, err
		}
		id, err := a.SaveTree(ctx, &snapshot.Tree{Nodes: []*snapshot.Node{fileNode("file.txt", content, size, in.Time)}})
		return &id, []layout.VolumeInfo{{Namespace: ns, Pod: "lonely", Volume: "vol", Files: 1, Bytes: size}}, err
	}
	prog := &snapshot.Progress{}
	res, err := Backup(ctx, cl, r, BackupOptions{
		Name: "app", Spec: layout.BackupSpec{IncludeNamespaces: []string{ns}}, TTL: 48 * time.Hour,
		CairnVersion: "test", Progress: prog, Volumes: hook,
	})
	if err != nil {
		t.Fatal(err)
	}
	info, sn := res.Info, res.Snapshot
	if info.Phase != layout.PhaseCompleted || len(info.Errors) > 0 {
		t.Fatalf("phase %s, errors %v, warnings %v", info.Phase, info.Errors, info.Warnings)
	}
	nodes := btTree(t, r, sn)

	// Every object made is there, as served (uid, spec), except the
	// excluded ConfigMap and the Event.
	d, err := kube.Discover(ctx, cl.Discovery)
	if err != nil {
		t.Fatal(err)
	}
	for key, live := range objs {
		kind, name, _ := strings.Cut(key, "/")
		i := slices.IndexFunc(d.Resources, func(r kube.Resource) bool { return r.Kind == kind })
		rs := d.Resources[i]
		itemNS := ""
		if rs.Namespaced {
			itemNS = ns
		}
		p := layout.ManifestPath(itemNS, rs.Resource, rs.Group, name)
		switch {
		case kind == "Event" || name == "skip-me" || strings.HasPrefix(name, "bt-unrelated-"):
			if nodes[p] != nil {
				t.Errorf("%s is in the backup", p)
			}
			continue
		case nodes[p] == nil:
			t.Errorf("%s is missing", p)
			continue
		}
		got := btManifest(t, r, nodes, p)
		now, err := cl.Dynamic.Resource(rs.GVR()).Namespace(itemNS).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetUID() != live.GetUID() || got.GetName() != name || got.GetNamespace() != live.GetNamespace() || got.GetKind() != kind {
			t.Errorf("%s: uid/name/namespace/kind %s %s %s %s", p, got.GetUID(), got.GetName(), got.GetNamespace(), got.GetKind())
		}
		if !reflect.DeepEqual(got.Object["spec"], now.Object["spec"]) {
			t.Errorf("%s: spec differs from the live object:\n%v\n%v", p, got.Object["spec"], now.Object["spec"])
		}
		if n := nodes[p]; n.Mode != manifestMode || !n.ModTime.Equal(info.Start) {
			t.Errorf("%s: mode %v mtime %v (start %v)", p, n.Mode, n.ModTime, info.Start)
		}
	}
	pvc := btManifest(t, r, nodes, layout.ManifestPath(ns, "persistentvolumeclaims", "", "data"))
	if phase, _, _ := unstructured.NestedString(pvc.Object, "status", "phase"); phase != "Bound" {
		t.Errorf("status not backed up: claim phase %q", phase)
	}

	// Cluster-scoped: exactly what the namespace needs.
	wantCluster := []string{
		"clusterroles.rbac.authorization.k8s.io/view",
		"customresourcedefinitions.apiextensions.k8s.io/" + crd,
		"ingressclasses.networking.k8s.io/bt-ic-" + sfx,
		"namespaces/" + ns,
		"persistentvolumes/bt-pv-" + sfx,
		"storageclasses.storage.k8s.io/bt-sc-" + sfx,
	}
	if got := btItems(nodes, "/resources/cluster"); !slices.Equal(got, wantCluster) {
		t.Errorf("cluster-scoped items\n%v\nwant\n%v", got, wantCluster)
	}
	nsItems := btItems(nodes, "/resources/namespaces/"+ns)
	for _, it := range nsItems {
		if strings.HasPrefix(it, "events") || strings.HasPrefix(it, "endpointslices") {
			t.Errorf("%s backed up", it)
		}
	}
	if len(btItems(nodes, "/resources/namespaces/"+other)) > 0 || nodes["/resources/namespaces/"+other] != nil {
		t.Errorf("namespace %s backed up", other)
	}

	// backup.json, counts, tags, the log, the volume hook.
	var fileInfo layout.BackupInfo
	if err := json.Unmarshal(btReadFile(t, r, nodes["/backup.json"]), &fileInfo); err != nil {
		t.Fatal(err)
	}
	if fileInfo.Name != "app" || fileInfo.Cluster != "cairn-test" || fileInfo.KubernetesVersion != "v1.37.2" ||
		fileInfo.Phase != layout.PhaseCompleted || fileInfo.Expires == nil || !fileInfo.Expires.Equal(info.Start.Add(48*time.Hour).Truncate(time.Second)) ||
		fileInfo.PreferredVersions["apps"] != "v1" || fileInfo.Spec.IncludeNamespaces[0] != ns || fileInfo.CairnVersion != "test" {
		t.Errorf("backup.json: %+v", fileInfo)
	}
	if fileInfo.TotalItems != len(nsItems)+len(wantCluster) || fileInfo.TotalItems != info.TotalItems || int(prog.Files.Load()) != info.TotalItems {
		t.Errorf("total %d, files in tree %d, progress %d", fileInfo.TotalItems, len(nsItems)+len(wantCluster), prog.Files.Load())
	}
	for dir, want := range map[string]int{"deployments.apps": 1, "services": 3, "widgets.bt" + sfx + ".example.com": 2,
		"rolebindings.rbac.authorization.k8s.io": 2, "ingresses.networking.k8s.io": 1, "persistentvolumes": 1, "namespaces": 1} {
		if fileInfo.Items[dir] != want {
			t.Errorf("items[%s] = %d, want %d (%s)", dir, fileInfo.Items[dir], want, btKeys(fileInfo.Items))
		}
	}
	if !slices.Contains(sn.Tags, "backup=app") || !slices.Contains(sn.Tags, retention.ExpiryTag(*info.Expires)) ||
		sn.Hostname != "cairn-test" || !slices.Equal(sn.Paths, []string{"k8s://cairn-test"}) || !sn.Time.Equal(info.Start) {
		t.Errorf("snapshot %+v", sn)
	}
	log := string(btReadFile(t, r, nodes["/logs/backup.log"]))
	for _, want := range []string{"discovered", "deployments.apps", "volume hook ran", "backup Completed"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if !slices.Contains(hookPods, "lonely") || !slices.Contains(hookPVCs, "data") || len(fileInfo.Volumes) != 1 {
		t.Errorf("hook saw pods %v claims %v; volumes %+v", hookPods, hookPVCs, fileInfo.Volumes)
	}
	if v := nodes["/volumes/file.txt"]; v == nil || string(btReadFile(t, r, v)) != "volume data\n" {
		t.Error("volume tree missing")
	}
	if n := nodes["/resources/namespaces"]; n.Mode != manifestDir || !n.ModTime.Equal(info.Start) {
		t.Errorf("dir mode %v", n.Mode)
	}

	// The name is taken now.
	if _, err := Backup(ctx, cl, r, BackupOptions{Name: "app"}); !errors.Is(err, ErrBackupExists) {
		t.Errorf("second backup named app: %v", err)
	}
	if _, err := Backup(ctx, cl, r, BackupOptions{Name: "Bad_Name"}); err == nil {
		t.Error("invalid name accepted")
	}

	t.Run("selectors", func(t *testing.T) {
		no := false
		cases := []struct {
			name        string
			spec        layout.BackupSpec
			nsWant      []string
			clusterWant []string
		}{
			{"label", layout.BackupSpec{Selector: "tier=web"},
				[]string{"configmaps/app-config", "deployments.apps/web", "endpoints/web", "pods/lonely", "serviceaccounts/default", "services/web", "widgets.bt" + sfx + ".example.com/w1"},
				[]string{"customresourcedefinitions.apiextensions.k8s.io/" + crd, "namespaces/" + ns}},
			{"or", layout.BackupSpec{OrSelectors: []string{"tier=db", "app=nothing"}},
				[]string{"statefulsets.apps/db"},
				[]string{"namespaces/" + ns, "storageclasses.storage.k8s.io/bt-sc-" + sfx}},
			{"resources", layout.BackupSpec{IncludeResources: []string{"deploy", "Widget"}},
				[]string{"deployments.apps/web", "widgets.bt" + sfx + ".example.com/w1", "widgets.bt" + sfx + ".example.com/w2"},
				[]string{"customresourcedefinitions.apiextensions.k8s.io/" + crd, "namespaces/" + ns}},
			{"no-cluster", layout.BackupSpec{IncludeResources: []string{"pvc", "rolebindings"}, ExcludeResources: []string{"rolebindings"}, IncludeClusterResources: &no},
				nil, []string{"namespaces/" + ns}},
		}
		for _, c := range cases {
			c.spec.IncludeNamespaces = []string{ns}
			res, err := Backup(ctx, cl, r, BackupOptions{Name: "sel-" + c.name, Spec: c.spec})
			if err != nil {
				t.Fatal(err)
			}
			nodes := btTree(t, r, res.Snapshot)
			nsGot := btItems(nodes, "/resources/namespaces/"+ns)
			if c.nsWant == nil { // claims: the StatefulSet's own claim may come and go
				c.nsWant = slices.DeleteFunc(slices.Clone(nsGot), func(s string) bool { return s != "persistentvolumeclaims/data-db-0" })
				c.nsWant = append([]string{"persistentvolumeclaims/data"}, c.nsWant...)
			}
			if !slices.Equal(nsGot, c.nsWant) {
				t.Errorf("%s: namespaced items\n%v\nwant\n%v", c.name, nsGot, c.nsWant)
			}
			if got := btItems(nodes, "/resources/cluster"); !slices.Equal(got, c.clusterWant) {
				t.Errorf("%s: cluster items\n%v\nwant\n%v", c.name, got, c.clusterWant)
			}
		}
	})

	t.Run("restic", func(t *testing.T) {
		if _, err := testutil.RunRestic(t, repoDir, btPassword, "check", "--read-data"); err != nil {
			t.Fatal(err)
		}
		target := t.TempDir()
		if _, err := testutil.RunRestic(t, repoDir, btPassword, "restore", sn.ID.String(), "--target", target); err != nil {
			t.Fatal(err)
		}
		want := btReadFile(t, r, nodes[layout.ManifestPath(ns, "deployments", "apps", "web")])
		got, err := os.ReadFile(filepath.Join(target, "resources", "namespaces", ns, "deployments.apps", "web.yaml"))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("restic restored %q (%v), want %q", got, err, want)
		}
	})
}
