package restore

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// obj parses a YAML object for the tables below.
func obj(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := utiljson.Unmarshal(js, &m); err != nil { // integers become int64, as in decoded objects
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

func sameObj(t *testing.T, what string, got, want *unstructured.Unstructured) {
	t.Helper()
	if !reflect.DeepEqual(got.Object, want.Object) {
		g, _ := yaml.Marshal(got.Object)
		w, _ := yaml.Marshal(want.Object)
		t.Errorf("%s:\ngot:\n%s\nwant:\n%s", what, g, w)
	}
}

var grStatefulSet = schema.GroupResource{Group: "apps", Resource: "statefulsets"}

func TestStripMetadata(t *testing.T) {
	in := obj(t, `
apiVersion: v1
kind: ConfigMap
metadata:
  name: a
  namespace: ns
  uid: 1234
  resourceVersion: "99"
  creationTimestamp: "2024-01-01T00:00:00Z"
  generation: 3
  selfLink: /api/v1/x
  deletionTimestamp: "2024-01-02T00:00:00Z"
  deletionGracePeriodSeconds: 30
  managedFields: [{manager: kubectl}]
  ownerReferences: [{apiVersion: v1, kind: Pod, name: p, uid: old}]
  labels: {app: a}
  annotations: {note: kept}
  finalizers: [example.com/keep]
data: {k: v}
`)
	stripMetadata(in)
	sameObj(t, "stripped", in, obj(t, `
apiVersion: v1
kind: ConfigMap
metadata:
  name: a
  namespace: ns
  managedFields: [{manager: kubectl}]
  labels: {app: a}
  annotations: {note: kept}
  finalizers: [example.com/keep]
data: {k: v}
`))
}

func TestResetServiceAllocations(t *testing.T) {
	for _, tc := range []struct {
		name     string
		preserve bool
		in, want string
	}{
		{"cluster IP cleared", false,
			`{spec: {type: ClusterIP, clusterIP: 10.0.0.5, clusterIPs: [10.0.0.5], ports: [{port: 80}]}}`,
			`{spec: {type: ClusterIP, ports: [{port: 80}]}}`},
		{"headless kept", false,
			`{spec: {clusterIP: None, clusterIPs: [None], ports: [{port: 80}]}}`,
			`{spec: {clusterIP: None, clusterIPs: [None], ports: [{port: 80}]}}`},
		{"node ports cleared", false,
			`{spec: {type: LoadBalancer, clusterIP: 10.0.0.7, healthCheckNodePort: 31000, ports: [{port: 80, nodePort: 30080}, {port: 443, nodePort: 30443}]}}`,
			`{spec: {type: LoadBalancer, ports: [{port: 80}, {port: 443}]}}`},
		{"node ports preserved", true,
			`{spec: {type: NodePort, clusterIP: 10.0.0.7, healthCheckNodePort: 31000, ports: [{port: 80, nodePort: 30080}]}}`,
			`{spec: {type: NodePort, healthCheckNodePort: 31000, ports: [{port: 80, nodePort: 30080}]}}`},
		{"node ports set by a field manager kept", false,
			`{metadata: {managedFields: [
			    {manager: kubectl-create, operation: Update, fieldsType: FieldsV1, fieldsV1: {"f:spec": {"f:ports": {
			      'k:{"port":80,"protocol":"TCP"}': {"f:nodePort": {}, "f:port": {}},
			      'k:{"port":81,"protocol":"TCP"}': {"f:port": {}}}}}},
			    {manager: argocd, operation: Apply, fieldsType: FieldsV1, fieldsV1: {"f:spec": {"f:healthCheckNodePort": {}}}}]},
			  spec: {type: LoadBalancer, healthCheckNodePort: 31000, ports: [{port: 80, nodePort: 30080}, {port: 81, nodePort: 30081}, {port: 80, protocol: UDP, nodePort: 30082}]}}`,
			`{metadata: {managedFields: [
			    {manager: kubectl-create, operation: Update, fieldsType: FieldsV1, fieldsV1: {"f:spec": {"f:ports": {
			      'k:{"port":80,"protocol":"TCP"}': {"f:nodePort": {}, "f:port": {}},
			      'k:{"port":81,"protocol":"TCP"}': {"f:port": {}}}}}},
			    {manager: argocd, operation: Apply, fieldsType: FieldsV1, fieldsV1: {"f:spec": {"f:healthCheckNodePort": {}}}}]},
			  spec: {type: LoadBalancer, healthCheckNodePort: 31000, ports: [{port: 80, nodePort: 30080}, {port: 81}, {port: 80, protocol: UDP}]}}`},
		{"node ports in last-applied kept, by name or port", false,
			`{metadata: {annotations: {kubectl.kubernetes.io/last-applied-configuration: '{"spec":{"type":"NodePort","ports":[{"name":"web","port":8080,"nodePort":30080},{"port":53,"protocol":"UDP","nodePort":"30053"},{"name":"auto","port":9000}]}}'}},
			  spec: {type: NodePort, healthCheckNodePort: 31000, ports: [{name: web, port: 80, nodePort: 30080}, {name: dns, port: 53, protocol: UDP, nodePort: 30053}, {name: auto, port: 9000, nodePort: 30900}]}}`,
			`{metadata: {annotations: {kubectl.kubernetes.io/last-applied-configuration: '{"spec":{"type":"NodePort","ports":[{"name":"web","port":8080,"nodePort":30080},{"port":53,"protocol":"UDP","nodePort":"30053"},{"name":"auto","port":9000}]}}'}},
			  spec: {type: NodePort, ports: [{name: web, port: 80, nodePort: 30080}, {name: dns, port: 53, protocol: UDP, nodePort: 30053}, {name: auto, port: 9000}]}}`},
		{"broken last-applied ignored", false,
			`{metadata: {annotations: {kubectl.kubernetes.io/last-applied-configuration: '{"spec":'}}, spec: {type: NodePort, ports: [{port: 80, nodePort: 30080}]}}`,
			`{metadata: {annotations: {kubectl.kubernetes.io/last-applied-configuration: '{"spec":'}}, spec: {type: NodePort, ports: [{port: 80}]}}`},
		{"external name untouched", false,
			`{spec: {type: ExternalName, externalName: example.com}}`,
			`{spec: {type: ExternalName, externalName: example.com}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := obj(t, tc.in)
			resetServiceAllocations(in, tc.preserve)
			sameObj(t, tc.name, in, obj(t, tc.want))
		})
	}
}

func TestTransformForRestore(t *testing.T) {
	cfg := transformConfig{
		BackupName: "nightly", RestoreName: "nightly-1",
		Namespaces:     map[string]string{"prod": "staging"},
		StorageClasses: map[string]string{"fast": "standard"},
		Images:         []ImageMapping{{From: "registry.old/team", To: "mirror.new/team"}},
	}
	labels := `{cairn.io/backup-name: nightly, cairn.io/restore-name: nightly-1}`
	for _, tc := range []struct {
		name     string
		gr       schema.GroupResource
		cfg      func(c *transformConfig)
		in, want string
	}{
		{name: "status stripped", gr: grConfigMap,
			in:   `{apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: prod, uid: x}, data: {k: v}, status: {x: 1}}`,
			want: `{apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: staging, labels: ` + labels + `}, data: {k: v}}`},
		{name: "status kept when asked", gr: grConfigMap, cfg: func(c *transformConfig) { c.KeepStatus = true },
			in:   `{apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: other}, status: {x: 1}}`,
			want: `{apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: other, labels: ` + labels + `}, status: {x: 1}}`},
		{name: "service account token secret emptied", gr: grSecret,
			in: `{apiVersion: v1, kind: Secret, type: kubernetes.io/service-account-token,
			      metadata: {name: t, namespace: prod, annotations: {kubernetes.io/service-account.name: app, kubernetes.io/service-account.uid: old}},
			      data: {token: dA==, ca.crt: Yw==, namespace: cHJvZA==, extra: eA==}}`,
			want: `{apiVersion: v1, kind: Secret, type: kubernetes.io/service-account-token,
			      metadata: {name: t, namespace: staging, annotations: {kubernetes.io/service-account.name: app}, labels: ` + labels + `},
			      data: {extra: eA==}}`},
		{name: "opaque secret kept", gr: grSecret,
			in:   `{apiVersion: v1, kind: Secret, metadata: {name: s, namespace: prod, labels: {a: b}}, type: Opaque, data: {k: dg==}}`,
			want: `{apiVersion: v1, kind: Secret, metadata: {name: s, namespace: staging, labels: {a: b, cairn.io/backup-name: nightly, cairn.io/restore-name: nightly-1}}, type: Opaque, data: {k: dg==}}`},
		{name: "pod node name and admission-computed fields cleared, images mapped", gr: grPod,
			in: `{apiVersion: v1, kind: Pod, metadata: {name: p, namespace: prod},
			      spec: {nodeName: n1, priority: 1000, preemptionPolicy: Never, overhead: {cpu: 250m}, runtimeClassName: kata, priorityClassName: batch,
			             initContainers: [{name: i, image: "registry.old/team/init:1"}],
			             containers: [{name: c, image: "registry.old/team/app@sha256:abc"}, {name: d, image: "nginx:1.25"}],
			             ephemeralContainers: [{name: e, image: "registry.old/team/debug"}]}}`,
			want: `{apiVersion: v1, kind: Pod, metadata: {name: p, namespace: staging, labels: ` + labels + `},
			      spec: {runtimeClassName: kata, priorityClassName: batch, initContainers: [{name: i, image: "mirror.new/team/init:1"}],
			             containers: [{name: c, image: "mirror.new/team/app@sha256:abc"}, {name: d, image: "nginx:1.25"}],
			             ephemeralContainers: [{name: e, image: "mirror.new/team/debug"}]}}`},
		{name: "cronjob template images mapped", gr: grCronJob,
			in:   `{apiVersion: batch/v1, kind: CronJob, metadata: {name: c, namespace: x}, spec: {jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: "registry.old/team/job:2"}]}}}}}}`,
			want: `{apiVersion: batch/v1, kind: CronJob, metadata: {name: c, namespace: x, labels: ` + labels + `}, spec: {jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: "mirror.new/team/job:2"}]}}}}}}`},
		{name: "pvc binding annotations removed, volume kept with its PV", gr: grPVC, cfg: func(c *transformConfig) { c.KeepVolumeName = true },
			in: `{apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: c, namespace: prod, annotations: {
			        pv.kubernetes.io/bind-completed: "yes", pv.kubernetes.io/bound-by-controller: "yes",
			        volume.beta.kubernetes.io/storage-provisioner: x, volume.kubernetes.io/storage-provisioner: x,
			        volume.kubernetes.io/selected-node: n1, mine: kept}},
			      spec: {storageClassName: fast, volumeName: pv1}, status: {phase: Bound}}`,
			want: `{apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: c, namespace: staging, annotations: {mine: kept}, labels: ` + labels + `},
			      spec: {storageClassName: standard, volumeName: pv1}}`},
		{name: "pvc without its PV forgets the volume", gr: grPVC,
			in:   `{apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: c, namespace: prod, annotations: {pv.kubernetes.io/bind-completed: "yes"}}, spec: {volumeName: pv1}}`,
			want: `{apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: c, namespace: staging, labels: ` + labels + `}, spec: {}}`},
		{name: "pv claim ref remapped", gr: grPV,
			in: `{apiVersion: v1, kind: PersistentVolume, metadata: {name: pv1},
			      spec: {storageClassName: fast, claimRef: {kind: PersistentVolumeClaim, namespace: prod, name: c, uid: u1, resourceVersion: "5"}}}`,
			want: `{apiVersion: v1, kind: PersistentVolume, metadata: {name: pv1, labels: ` + labels + `},
			      spec: {storageClassName: standard, claimRef: {kind: PersistentVolumeClaim, namespace: staging, name: c}}}`},
		{name: "statefulset claim templates mapped", gr: grStatefulSet,
			in:   `{apiVersion: apps/v1, kind: StatefulSet, metadata: {name: s, namespace: prod}, spec: {volumeClaimTemplates: [{metadata: {name: d}, spec: {storageClassName: fast}}]}}`,
			want: `{apiVersion: apps/v1, kind: StatefulSet, metadata: {name: s, namespace: staging, labels: ` + labels + `}, spec: {volumeClaimTemplates: [{metadata: {name: d}, spec: {storageClassName: standard}}]}}`},
		{name: "namespace renamed", gr: grNamespace,
			in:   `{apiVersion: v1, kind: Namespace, metadata: {name: prod, labels: {kubernetes.io/metadata.name: prod}}, spec: {finalizers: [kubernetes]}, status: {phase: Active}}`,
			want: `{apiVersion: v1, kind: Namespace, metadata: {name: staging, labels: {kubernetes.io/metadata.name: prod, cairn.io/backup-name: nightly, cairn.io/restore-name: nightly-1}}, spec: {finalizers: [kubernetes]}}`},
		{name: "role binding subjects remapped", gr: grRoleBinding,
			in: `{apiVersion: rbac.authorization.k8s.io/v1, kind: RoleBinding, metadata: {name: rb, namespace: prod},
			      subjects: [{kind: ServiceAccount, name: sa, namespace: prod}, {kind: ServiceAccount, name: sb, namespace: other}, {kind: User, name: prod}]}`,
			want: `{apiVersion: rbac.authorization.k8s.io/v1, kind: RoleBinding, metadata: {name: rb, namespace: staging, labels: ` + labels + `},
			      subjects: [{kind: ServiceAccount, name: sa, namespace: staging}, {kind: ServiceAccount, name: sb, namespace: other}, {kind: User, name: prod}]}`},
		{name: "job selector regenerated", gr: grJob,
			in: `{apiVersion: batch/v1, kind: Job, metadata: {name: j, namespace: x},
			      spec: {selector: {matchLabels: {batch.kubernetes.io/controller-uid: u}},
			             template: {metadata: {labels: {batch.kubernetes.io/controller-uid: u, controller-uid: u, job-name: j, app: a}}, spec: {containers: []}}}}`,
			want: `{apiVersion: batch/v1, kind: Job, metadata: {name: j, namespace: x, labels: ` + labels + `},
			      spec: {template: {metadata: {labels: {job-name: j, app: a}}, spec: {containers: []}}}}`},
		{name: "job with manual selector kept", gr: grJob,
			in:   `{apiVersion: batch/v1, kind: Job, metadata: {name: j, namespace: x}, spec: {manualSelector: true, selector: {matchLabels: {a: b}}}}`,
			want: `{apiVersion: batch/v1, kind: Job, metadata: {name: j, namespace: x, labels: ` + labels + `}, spec: {manualSelector: true, selector: {matchLabels: {a: b}}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			in := obj(t, tc.in)
			transformForRestore(in, tc.gr, c)
			sameObj(t, tc.name, in, obj(t, tc.want))
		})
	}
}

func TestMapImage(t *testing.T) {
	maps, err := ParseImageMappings([]string{"registry.old/team:mirror.new/team", "docker.io/library:mirror.local/hub,reg:5000/a:reg2:6000/b"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"registry.old/team/app:1.0", "mirror.new/team/app:1.0"},
		{"registry.old/team/sub/app", "mirror.new/team/sub/app"},
		{"registry.old/team/app@sha256:0123", "mirror.new/team/app@sha256:0123"},
		{"registry.old/team/app:1@sha256:0123", "mirror.new/team/app:1@sha256:0123"},
		{"registry.old/teamster/app:1", "registry.old/teamster/app:1"}, // component boundary
		{"registry.old/team:1", "registry.old/team:1"},                 // the name itself is not mapped
		{"nginx:1.25", "mirror.local/hub/nginx:1.25"},                  // Docker Hub short form
		{"library/nginx", "mirror.local/hub/nginx"},
		{"docker.io/library/redis:7", "mirror.local/hub/redis:7"},
		{"bitnami/redis:7", "bitnami/redis:7"},
		{"reg:5000/a/x:3", "reg2:6000/b/x:3"},
		{"other.io/a/x", "other.io/a/x"},
	} {
		if got := mapImage(tc.in, maps); got != tc.want {
			t.Errorf("mapImage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseImageMappings(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []ImageMapping
		err  bool
	}{
		{in: "a/b:c/d", want: []ImageMapping{{"a/b", "c/d"}}},
		{in: "a/b/:c/d/", want: []ImageMapping{{"a/b", "c/d"}}},
		{in: "r:443/x:s:8443/y", want: []ImageMapping{{"r:443/x", "s:8443/y"}}},
		{in: "a:b,long/prefix:x", want: []ImageMapping{{"long/prefix", "x"}, {"a", "b"}}}, // longest first
		{in: "nocolon", err: true},
		{in: "a:b:c", err: true},
		{in: ":b", err: true},
		{in: "a@sha:b", err: true},
	} {
		got, err := ParseImageMappings([]string{tc.in})
		if (err != nil) != tc.err {
			t.Errorf("%q: err %v, want error=%v", tc.in, err, tc.err)
			continue
		}
		if !tc.err && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseMappings(t *testing.T) {
	got, err := ParseMappings("namespace-mappings", []string{"a:b, c:d", "e:f"})
	if err != nil || !reflect.DeepEqual(got, map[string]string{"a": "b", "c": "d", "e": "f"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"a", "a:", ":b", "a:b:c"} {
		if _, err := ParseMappings("x", []string{bad}); err == nil || !strings.Contains(err.Error(), "--x") {
			t.Errorf("%q: error %v, want one naming --x", bad, err)
		}
	}
	if _, err := ParseMappings("x", []string{"a:b,a:c"}); err == nil {
		t.Error("conflicting mappings accepted")
	}
}

func TestLabelValue(t *testing.T) {
	for in, want := range map[string]string{
		"nightly-20240101":      "nightly-20240101",
		"a b/c":                 "a-b-c",
		"-x-":                   "x",
		strings.Repeat("a", 70): strings.Repeat("a", 63),
	} {
		if got := labelValue(in); got != want {
			t.Errorf("labelValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMergeForUpdate(t *testing.T) {
	for _, tc := range []struct {
		name          string
		gr            schema.GroupResource
		desired, live string
		want          string
	}{
		{"service keeps allocations", grService,
			`{metadata: {name: s}, spec: {ports: [{port: 80}, {port: 53, protocol: UDP}, {port: 81, nodePort: 30081}]}}`,
			`{metadata: {name: s, resourceVersion: "7", ownerReferences: [{name: o}]}, spec: {clusterIP: 10.0.0.9, clusterIPs: [10.0.0.9],
			  ports: [{port: 80, protocol: TCP, nodePort: 30080}, {port: 53, protocol: TCP, nodePort: 30053}, {port: 81, nodePort: 30099}]}, status: {loadBalancer: {}}}`,
			`{metadata: {name: s, resourceVersion: "7", ownerReferences: [{name: o}]}, spec: {clusterIP: 10.0.0.9, clusterIPs: [10.0.0.9],
			  ports: [{port: 80, nodePort: 30080}, {port: 53, protocol: UDP}, {port: 81, nodePort: 30081}]}, status: {loadBalancer: {}}}`},
		{"claim keeps its volume and finalizers", grPVC,
			`{metadata: {name: c}, spec: {resources: {requests: {storage: 2Gi}}}}`,
			`{metadata: {name: c, resourceVersion: "3", finalizers: [kubernetes.io/pvc-protection]}, spec: {volumeName: pv9, resources: {requests: {storage: 1Gi}}}, status: {phase: Bound}}`,
			`{metadata: {name: c, resourceVersion: "3", finalizers: [kubernetes.io/pvc-protection]}, spec: {volumeName: pv9, resources: {requests: {storage: 2Gi}}}, status: {phase: Bound}}`},
		{"desired status wins", grConfigMap,
			`{metadata: {name: c}, data: {a: "1"}, status: {mine: true}}`,
			`{metadata: {name: c, resourceVersion: "3"}, data: {a: "2"}, status: {theirs: true}}`,
			`{metadata: {name: c, resourceVersion: "3"}, data: {a: "1"}, status: {mine: true}}`},
		{"job keeps generated selector", grJob,
			`{metadata: {name: j}, spec: {template: {metadata: {labels: {app: a}}}}}`,
			`{metadata: {name: j, resourceVersion: "1"}, spec: {selector: {matchLabels: {controller-uid: u}}, template: {metadata: {labels: {app: a, controller-uid: u}}}}}`,
			`{metadata: {name: j, resourceVersion: "1"}, spec: {selector: {matchLabels: {controller-uid: u}}, template: {metadata: {labels: {app: a, controller-uid: u}}}}}`},
		{"pv keeps its bound claim", grPV,
			`{metadata: {name: v}, spec: {claimRef: {namespace: ns1, name: c}}}`,
			`{metadata: {name: v, resourceVersion: "1"}, spec: {claimRef: {namespace: ns1, name: c, uid: u}}}`,
			`{metadata: {name: v, resourceVersion: "1"}, spec: {claimRef: {namespace: ns1, name: c, uid: u}}}`},
		{"pv bound elsewhere keeps its claim", grPV,
			`{metadata: {name: v}, spec: {claimRef: {namespace: ns1-copy, name: c}}}`,
			`{metadata: {name: v, resourceVersion: "1"}, spec: {claimRef: {namespace: ns1, name: c, uid: u}}}`,
			`{metadata: {name: v, resourceVersion: "1"}, spec: {claimRef: {namespace: ns1, name: c, uid: u}}}`},
		{"available pv is not bound by an update", grPV,
			`{metadata: {name: v}, spec: {claimRef: {namespace: ns1-copy, name: c}}}`,
			`{metadata: {name: v, resourceVersion: "1"}, spec: {}}`,
			`{metadata: {name: v, resourceVersion: "1"}, spec: {}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeForUpdate(obj(t, tc.desired), obj(t, tc.live), tc.gr)
			sameObj(t, tc.name, got, obj(t, tc.want))
		})
	}
}

func TestAutoCreated(t *testing.T) {
	if !autoCreated(grConfigMap, "kube-root-ca.crt") || !autoCreated(grServiceAcct, "default") ||
		autoCreated(grConfigMap, "default") || autoCreated(grSecret, "kube-root-ca.crt") {
		t.Error("autoCreated")
	}
}

func unstructuredInt(o map[string]any, fields ...string) (int64, bool, error) {
	return unstructured.NestedInt64(o, fields...)
}

func unstructuredSlice(o map[string]any, fields ...string) ([]any, bool, error) {
	return unstructured.NestedSlice(o, fields...)
}

func TestDefaultRestoreName(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for backup, want := range map[string]string{
		"nightly":               "nightly-20240506070809",
		strings.Repeat("b", 60): strings.Repeat("b", 48) + "-20240506070809",
		"x/y":                   "x-y-20240506070809",
		"":                      "restore-20240506070809",
	} {
		got := DefaultRestoreName(backup, at)
		if got != want || len(validation.IsValidLabelValue(got)) > 0 {
			t.Errorf("DefaultRestoreName(%q) = %q, want %q", backup, got, want)
		}
	}
}
