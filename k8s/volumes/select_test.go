package volumes

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/tests/cluster"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// pod makes a Running pod on node-1 with the given volumes and annotations
// ("k=v" strings).
func pod(name string, vols []corev1.Volume, ann ...string) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID("uid-" + name), Annotations: map[string]string{}},
		Spec:       corev1.PodSpec{NodeName: "node-1", Volumes: vols},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, a := range ann {
		k, v, _ := strings.Cut(a, "=")
		p.Annotations[k] = v
	}
	return p
}

func vol(name string, src corev1.VolumeSource) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: src}
}

var (
	emptyDir  = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
	memoryDir = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}
	hostPath  = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/log"}}
	secret    = corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}
	configMap = corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}
	projected = corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}
	downward  = corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{}}
	image     = corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "models:v1"}}
	csiInline = corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "secrets-store.csi.k8s.io"}}
	nfs       = corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "nas", Path: "/x"}}
	ephemeral = corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}
)

func claimVol(claim string) corev1.VolumeSource {
	return corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}
}

// claim makes a bound claim of 1Gi in class "fast"; pv "" leaves it Pending.
func claim(name, pv string) corev1.PersistentVolumeClaim {
	c := corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}}
	sc := "fast"
	c.Spec.StorageClassName = &sc
	c.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
	c.Status.Phase = corev1.ClaimPending
	if pv != "" {
		c.Spec.VolumeName, c.Status.Phase = pv, corev1.ClaimBound
		c.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}
	}
	return c
}

// summary renders a plan as "pod/volume" for items and "pod/volume:Reason"
// for skips, sorted as the plan is.
func summary(p *Plan) (items, skips []string) {
	for _, it := range p.Items {
		items = append(items, it.Pod+"/"+it.Volume)
	}
	for _, s := range p.Skipped {
		skips = append(skips, fmt.Sprintf("%s/%s:%s", s.Pod, s.Volume, s.Reason))
	}
	return items, skips
}

func TestSelect(t *testing.T) {
	all := []corev1.Volume{vol("data", emptyDir), vol("ram", memoryDir), vol("logs", hostPath), vol("s", secret), vol("c", configMap),
		vol("kube-api-access", projected), vol("info", downward), vol("model", image), vol("vault", csiInline), vol("nas", nfs)}
	blockMode := claim("raw", "pv-raw")
	bm := corev1.PersistentVolumeBlock
	blockMode.Spec.VolumeMode = &bm
	stdClaims := []corev1.PersistentVolumeClaim{claim("db", "pv-db"), claim("pending", ""), blockMode, claim("web-scratch", "pv-eph")}
	pending := pod("pend", []corev1.Volume{vol("data", emptyDir)})
	pending.Status.Phase, pending.Spec.NodeName = corev1.PodPending, ""
	done := pod("done", []corev1.Volume{vol("data", emptyDir)})
	done.Status.Phase = corev1.PodSucceeded
	terminating := pod("term", []corev1.Volume{vol("data", emptyDir)})
	terminating.DeletionTimestamp = &metav1.Time{}

	tests := []struct {
		name         string
		optOut       bool
		pods         []corev1.Pod
		items, skips []string
		warn         []string // substrings, one per warning
	}{
		{name: "opt-in: nothing annotated, nothing copied", pods: []corev1.Pod{pod("a", all[:1])},
			skips: []string{"a/data:NotSelected"}},
		{name: "opt-in: named volumes, never-copied kinds stay out", pods: []corev1.Pod{pod("a", all, AnnotationInclude+"=data, ram,vault,logs,s")},
			items: []string{"a/data", "a/ram", "a/vault"},
			skips: []string{"a/c:NeverCopied", "a/info:NeverCopied", "a/kube-api-access:NeverCopied", "a/logs:NeverCopied", "a/model:NeverCopied", "a/nas:NotSelected", "a/s:NeverCopied"}},
		{name: "opt-out: all that can be, but not RAM scratch or CSI inline", optOut: true, pods: []corev1.Pod{pod("a", all)},
			items: []string{"a/data", "a/nas"},
			skips: []string{"a/c:NeverCopied", "a/info:NeverCopied", "a/kube-api-access:NeverCopied", "a/logs:NeverCopied", "a/model:NeverCopied", "a/ram:NotByDefault", "a/s:NeverCopied", "a/vault:NotByDefault"}},
		{name: "opt-out: excludes, and naming RAM scratch copies it", optOut: true,
			pods:  []corev1.Pod{pod("a", all[:3], AnnotationExclude+"=data", AnnotationInclude+"=ram")},
			items: []string{"a/ram"}, skips: []string{"a/data:Excluded", "a/logs:NeverCopied"}},
		{name: "excluded wins over named", pods: []corev1.Pod{pod("a", all[:1], AnnotationInclude+"=data", AnnotationExclude+"=data")},
			skips: []string{"a/data:Excluded"}},
		{name: "Velero spellings", optOut: true, pods: []corev1.Pod{
			pod("a", all[:2], VeleroAnnotationExclude+"=data"),
			pod("b", all[:2], VeleroAnnotationInclude+"=ram")},
			items: []string{"b/data", "b/ram"}, skips: []string{"a/data:Excluded", "a/ram:NotByDefault"}},
		{name: "cairn's spelling wins over Velero's", pods: []corev1.Pod{pod("a", all[:2], AnnotationInclude+"=ram", VeleroAnnotationInclude+"=data")},
			items: []string{"a/ram"}, skips: []string{"a/data:NotSelected"}, warn: []string{"has both backup.cairn.io/backup-volumes and backup.velero.io/backup-volumes; using backup.cairn.io"}},
		{name: "same value in both spellings: no warning", pods: []corev1.Pod{pod("a", all[:1], AnnotationInclude+"=data", VeleroAnnotationInclude+"=data")},
			items: []string{"a/data"}},
		{name: "unknown name warned", pods: []corev1.Pod{pod("a", all[:1], AnnotationInclude+"=data,dta")},
			items: []string{"a/data"}, warn: []string{`names volume "dta", which the pod does not have`}},
		{name: "pods not running are reported", optOut: true, pods: []corev1.Pod{pending, done, terminating, pod("z", []corev1.Volume{vol("s", secret)})},
			skips: []string{"done/data:PodNotRunning", "pend/data:PodNotRunning", "term/data:PodNotRunning", "z/s:NeverCopied"}},
		{name: "claims: bound, pending, missing, block, ephemeral", optOut: true, pods: []corev1.Pod{pod("web", []corev1.Volume{
			vol("db", claimVol("db")), vol("p", claimVol("pending")), vol("gone", claimVol("nope")), vol("raw", claimVol("raw")), vol("scratch", ephemeral)})},
			items: []string{"web/db", "web/scratch"},
			skips: []string{"web/gone:ClaimNotFound", "web/p:ClaimUnbound", "web/raw:BlockVolume"}},
		{name: "shared claim copied once, from the first running pod by name", optOut: true, pods: []corev1.Pod{
			pod("c", []corev1.Volume{vol("shared", claimVol("db"))}),
			func() corev1.Pod {
				p := pod("a", []corev1.Volume{vol("shared", claimVol("db"))})
				p.Status.Phase = corev1.PodPending
				return p
			}(),
			pod("b", []corev1.Volume{vol("d", claimVol("db"))})},
			items: []string{"b/d"}, skips: []string{"a/shared:SharedClaim", "c/shared:SharedClaim"}},
		{name: "shared claim: only where selected", pods: []corev1.Pod{
			pod("a", []corev1.Volume{vol("shared", claimVol("db"))}),
			pod("b", []corev1.Volume{vol("shared", claimVol("db"))}, AnnotationInclude+"=shared")},
			items: []string{"b/shared"}, skips: []string{"a/shared:NotSelected"}},
		{name: "shared claim, no pod running", optOut: true, pods: []corev1.Pod{
			func() corev1.Pod {
				p := pod("a", []corev1.Volume{vol("v", claimVol("db"))})
				p.Status.Phase = corev1.PodFailed
				return p
			}(),
			func() corev1.Pod {
				p := pod("b", []corev1.Volume{vol("v", claimVol("db"))})
				p.Status.Phase = corev1.PodPending
				return p
			}()},
			skips: []string{"a/v:PodNotRunning", "b/v:PodNotRunning"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 2 {
				pods := slices.Clone(tc.pods)
				if round == 1 {
					slices.Reverse(pods) // the plan does not depend on listing order
				}
				plan := SelectTyped(pods, stdClaims, Options{DefaultToFSBackup: tc.optOut})
				items, skips := summary(plan)
				if !slices.Equal(items, tc.items) || !slices.Equal(skips, tc.skips) {
					t.Fatalf("round %d:\nitems %v\n want %v\nskips %v\n want %v", round, items, tc.items, skips, tc.skips)
				}
				if len(plan.Warnings) != len(tc.warn) {
					t.Fatalf("warnings %q, want %q", plan.Warnings, tc.warn)
				}
				for i, w := range tc.warn {
					if !strings.Contains(plan.Warnings[i], w) {
						t.Errorf("warning %q lacks %q", plan.Warnings[i], w)
					}
				}
				for _, s := range plan.Skipped {
					if s.Detail == "" || strings.Contains(s.Detail, "\n") {
						t.Errorf("skip %+v: detail must be one non-empty line", s)
					}
				}
			}
		})
	}
}

func TestSelectItemFields(t *testing.T) {
	ctrl := true
	p := pod("web-7d9f8-abcde", []corev1.Volume{vol("db", claimVol("db")), vol("cache", emptyDir), vol("shared", claimVol("db"))})
	p.Labels = map[string]string{"pod-template-hash": "7d9f8"}
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8", Controller: &ctrl}}
	other := pod("other", []corev1.Volume{vol("x", claimVol("db"))})
	plan := SelectTyped([]corev1.Pod{p, other}, []corev1.PersistentVolumeClaim{claim("db", "pv-db")}, Options{DefaultToFSBackup: true})
	items, skips := summary(plan)
	// The same claim twice in one pod is copied once too.
	if !slices.Equal(items, []string{"other/x", "web-7d9f8-abcde/cache"}) || len(skips) != 2 {
		t.Fatalf("items %v skips %v", items, skips)
	}
	db := plan.Items[0]
	want := Item{Namespace: "shop", Pod: "other", PodUID: "uid-other", Node: "node-1", Volume: "x", Source: "persistentVolumeClaim",
		PVC: "db", PV: "pv-db", StorageClass: "fast", Size: "2Gi", Workload: "Pod/other",
		SharedWith: []string{"shop/web-7d9f8-abcde"}}
	if fmt.Sprint(db) != fmt.Sprint(want) {
		t.Errorf("item\n%+v\nwant\n%+v", db, want)
	}
	cache := plan.Items[1]
	if cache.Source != "emptyDir" || cache.PVC != "" || cache.Workload != "Deployment/web" {
		t.Errorf("cache item %+v", cache)
	}
	if h := db.Hint(); h.PVC != "shop/db" || h.Namespace != "shop" || h.Workload != "Pod/other" || h.Volume != "x" {
		t.Errorf("hint %+v", h)
	}
	if h := cache.Hint(); h.PVC != "" || h.Workload != "Deployment/web" {
		t.Errorf("cache hint %+v", h)
	}
	spec := db.Spec("nightly", volapi.RepositoryRef{ID: "r1"}, volapi.UploaderOptions{ParallelFiles: 2})
	if spec.Node != "node-1" || spec.Pod != (volapi.PodRef{Namespace: "shop", Name: "other", UID: "uid-other"}) || spec.PV != "pv-db" ||
		spec.PVC != "db" || spec.Parent != db.Hint() || spec.BackupName != "nightly" || spec.Repository.ID != "r1" || spec.Uploader.ParallelFiles != 2 {
		t.Errorf("spec %+v", spec)
	}
}

func TestWorkload(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		owners []metav1.OwnerReference
		hash   string
		want   string
	}{
		{want: "Pod/p"},
		{owners: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Controller: &yes}}, want: "StatefulSet/db"},
		{owners: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5f6d", Controller: &yes}}, hash: "5f6d", want: "Deployment/web"},
		{owners: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "plain", Controller: &yes}}, want: "ReplicaSet/plain"},
		{owners: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs-1", Controller: &yes}}, hash: "other", want: "ReplicaSet/rs-1"},
		{owners: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "x", Controller: &no}, {APIVersion: "batch/v1", Kind: "Job", Name: "j", Controller: &yes}}, want: "Job/j"},
	} {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", OwnerReferences: tc.owners, Labels: map[string]string{"pod-template-hash": tc.hash}}}
		if got := Workload(&p); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.owners, got, tc.want)
		}
	}
}

// Select takes the unstructured objects k8s/backup lists.
func TestSelectUnstructured(t *testing.T) {
	objs := cluster.Objects(t, `
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, uid: u1, annotations: {backup.velero.io/backup-volumes: data}}
spec:
  nodeName: node-1
  containers: [{name: c, image: x}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}, {name: tmp, emptyDir: {}}]
status: {phase: Running}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop}
spec: {volumeName: pv-1, storageClassName: std, resources: {requests: {storage: 5Gi}}}
status: {phase: Bound}
`)
	plan, err := Select([]*unstructured.Unstructured{objs[0]}, []*unstructured.Unstructured{objs[1]}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	items, skips := summary(plan)
	if !slices.Equal(items, []string{"web/data"}) || !slices.Equal(skips, []string{"web/tmp:NotSelected"}) ||
		plan.Items[0].PV != "pv-1" || plan.Items[0].Size != "5Gi" || plan.Items[0].PodUID != "u1" {
		t.Errorf("items %v skips %v: %+v", items, skips, plan.Items)
	}
	unstructured.SetNestedField(objs[0].Object, "not-a-list", "spec", "volumes")
	if _, err := Select([]*unstructured.Unstructured{objs[0]}, nil, Options{}); err == nil || !strings.Contains(err.Error(), "pod shop/web") {
		t.Errorf("bad pod: %v", err)
	}
}
