// Package volumes decides which pod volume data a cluster backup copies
// and from which earlier volume snapshot each copy starts: the selection
// rules Velero users know (pod annotations, opt-in or opt-out), one copy
// per claim, and the parent choice by tags. It is pure logic over pods,
// claims and snapshot tags; the CLI turns a Plan into VolumeBackups
// (k8s/volapi) and the node agent uses ChooseParent.
package volumes

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Pod annotations that choose volumes: a comma-separated list of the
// pod's volume names. Velero's spellings are read too, so annotated
// workloads move over unchanged.
const (
	AnnotationInclude       = "backup.cairn.io/backup-volumes"
	AnnotationExclude       = "backup.cairn.io/backup-volumes-excludes"
	VeleroAnnotationInclude = "backup.velero.io/backup-volumes"
	VeleroAnnotationExclude = "backup.velero.io/backup-volumes-excludes"
)

// Options of a selection.
type Options struct {
	// DefaultToFSBackup is --default-volumes-to-fs-backup: every volume
	// that can be copied is, unless excluded (opt-out). Without it only
	// the volumes the include annotation names are (opt-in).
	DefaultToFSBackup bool
}

// Item is one volume to copy.
type Item struct {
	Namespace, Pod, PodUID, Node string
	Volume                       string // the pod's volume name
	Source                       string // the volume source's field name: "persistentVolumeClaim", "emptyDir", "ephemeral", "nfs", …
	PVC, PV, StorageClass        string // for "persistentVolumeClaim" and "ephemeral"
	Size                         string // the claim's capacity (else its request), e.g. "10Gi"
	Workload                     string // "<Kind>/<name>" of the owning workload, or "Pod/<name>"
	SharedWith                   []string
}

// Reason says why a volume is not copied.
type Reason string

// Reasons for skipping a volume.
const (
	ReasonNeverCopied   Reason = "NeverCopied"   // hostPath, secret, configMap, projected, downwardAPI, image
	ReasonExcluded      Reason = "Excluded"      // named in the excludes annotation
	ReasonNotSelected   Reason = "NotSelected"   // opt-in and not named
	ReasonNotByDefault  Reason = "NotByDefault"  // opt-out, but scratch or driver-provided: name it to copy it
	ReasonPodNotRunning Reason = "PodNotRunning" // its files are not there to read
	ReasonClaimNotFound Reason = "ClaimNotFound" // the claim is not in the backup
	ReasonClaimUnbound  Reason = "ClaimUnbound"
	ReasonBlockVolume   Reason = "BlockVolume"
	ReasonSharedClaim   Reason = "SharedClaim" // copied once, from another pod
)

// Skip is a volume that is not copied, and why.
type Skip struct {
	Namespace, Pod, Volume string
	Reason                 Reason
	Detail                 string
}

// Plan is the outcome of a selection, sorted by namespace, pod and volume.
type Plan struct {
	Items    []Item
	Skipped  []Skip
	Warnings []string // annotation mistakes, one line each
}

// Select is SelectTyped for the unstructured pods and claims a backup
// lists (k8s/backup's VolumeInput).
func Select(pods, pvcs []*unstructured.Unstructured, opts Options) (*Plan, error) {
	tp := make([]corev1.Pod, len(pods))
	for i, u := range pods {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &tp[i]); err != nil {
			return nil, fmt.Errorf("pod %s/%s: %w", u.GetNamespace(), u.GetName(), err)
		}
	}
	tc := make([]corev1.PersistentVolumeClaim, len(pvcs))
	for i, u := range pvcs {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &tc[i]); err != nil {
			return nil, fmt.Errorf("claim %s/%s: %w", u.GetNamespace(), u.GetName(), err)
		}
	}
	return SelectTyped(tp, tc, opts), nil
}

// candidate is a volume the rules select, before the pod's state and the
// sharing of claims are looked at.
type candidate struct {
	pod  *corev1.Pod
	item Item
}

// SelectTyped applies the rules to each volume of each pod:
//
//  1. hostPath, secret, configMap, projected, downwardAPI and image
//     volumes are never copied: node files, objects restored from their
//     manifests, or image content pulled again;
//  2. a volume the excludes annotation names is not copied;
//  3. a volume the include annotation names is copied; other volumes are
//     copied only with DefaultToFSBackup, and even then not memory-backed
//     emptyDirs (scratch in RAM) or CSI inline volumes (driver-provided,
//     often secrets): naming them copies them;
//  4. a selected claim must be bound, file-system mode, and in the
//     backup; a claim several pods mount is copied once, from the first
//     Running pod by name; volumes of pods that are not Running are
//     reported, not waited for.
func SelectTyped(pods []corev1.Pod, pvcs []corev1.PersistentVolumeClaim, opts Options) *Plan {
	plan := &Plan{}
	claims := map[string]*corev1.PersistentVolumeClaim{}
	for i := range pvcs {
		claims[pvcs[i].Namespace+"/"+pvcs[i].Name] = &pvcs[i]
	}
	var cands []candidate
	for i := range pods {
		p := &pods[i]
		ann := readAnnotations(p, plan)
		for _, v := range p.Spec.Volumes {
			it, skip := selectVolume(p, v, ann, opts, claims)
			if skip != nil {
				plan.Skipped = append(plan.Skipped, *skip)
				continue
			}
			cands = append(cands, candidate{pod: p, item: it})
		}
	}
	plan.place(cands)
	slices.SortFunc(plan.Items, func(a, b Item) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Volume, b.Volume))
	})
	slices.SortFunc(plan.Skipped, func(a, b Skip) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Volume, b.Volume))
	})
	return plan
}

// place turns the selected volumes into items: claims once, from the
// chosen pod; nothing from pods that are not running.
func (plan *Plan) place(cands []candidate) {
	byClaim := map[string][]candidate{}
	for _, c := range cands {
		if c.item.PVC != "" {
			k := c.item.Namespace + "/" + c.item.PVC
			byClaim[k] = append(byClaim[k], c)
			continue
		}
		if why := notRunning(c.pod); why != "" {
			plan.skip(c.item, ReasonPodNotRunning, why)
			continue
		}
		plan.Items = append(plan.Items, c.item)
	}
	for claim, group := range byClaim {
		// Running pods first, then by name: the same pod every time.
		slices.SortFunc(group, func(a, b candidate) int {
			ra, rb := notRunning(a.pod) == "", notRunning(b.pod) == ""
			if ra != rb {
				if ra {
					return -1
				}
				return 1
			}
			return cmp.Compare(a.pod.Name, b.pod.Name)
		})
		chosen := group[0]
		if why := notRunning(chosen.pod); why != "" {
			for _, c := range group {
				plan.skip(c.item, ReasonPodNotRunning, notRunning(c.pod))
			}
			continue
		}
		for _, c := range group[1:] {
			if other := c.item.Namespace + "/" + c.item.Pod; !slices.Contains(chosen.item.SharedWith, other) && c.pod != chosen.pod {
				chosen.item.SharedWith = append(chosen.item.SharedWith, other)
			}
			plan.skip(c.item, ReasonSharedClaim, fmt.Sprintf("claim %s is copied once, from pod %s", claim, chosen.pod.Name))
		}
		plan.Items = append(plan.Items, chosen.item)
	}
}

func (plan *Plan) skip(it Item, r Reason, detail string) {
	plan.Skipped = append(plan.Skipped, Skip{Namespace: it.Namespace, Pod: it.Pod, Volume: it.Volume, Reason: r, Detail: detail})
}

// notRunning says why a pod's volumes cannot be read now, or "".
func notRunning(p *corev1.Pod) string {
	switch {
	case p.DeletionTimestamp != nil:
		return "pod is terminating"
	case p.Spec.NodeName == "":
		return "pod is not scheduled to a node"
	case p.Status.Phase != corev1.PodRunning:
		return fmt.Sprintf("pod is %s, not Running", cmp.Or(string(p.Status.Phase), "in no phase"))
	}
	return ""
}

// selectVolume applies rules 1 to 3, and the claim checks of rule 4.
func selectVolume(p *corev1.Pod, v corev1.Volume, ann annotations, opts Options, claims map[string]*corev1.PersistentVolumeClaim) (Item, *Skip) {
	it := Item{Namespace: p.Namespace, Pod: p.Name, PodUID: string(p.UID), Node: p.Spec.NodeName,
		Volume: v.Name, Source: sourceName(v.VolumeSource), Workload: Workload(p)}
	skip := func(r Reason, format string, args ...any) (Item, *Skip) {
		return it, &Skip{Namespace: p.Namespace, Pod: p.Name, Volume: v.Name, Reason: r, Detail: fmt.Sprintf(format, args...)}
	}
	if why := neverCopied(v.VolumeSource); why != "" {
		return skip(ReasonNeverCopied, "%s volume: %s", it.Source, why)
	}
	if slices.Contains(ann.exclude, v.Name) {
		return skip(ReasonExcluded, "named in %s", ann.excludeKey)
	}
	named := slices.Contains(ann.include, v.Name)
	switch {
	case named:
	case !opts.DefaultToFSBackup:
		return skip(ReasonNotSelected, "not named in %s (or use --default-volumes-to-fs-backup)", AnnotationInclude)
	case v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory:
		return skip(ReasonNotByDefault, "memory-backed emptyDir is scratch space; name it in %s to copy it", AnnotationInclude)
	case v.CSI != nil:
		return skip(ReasonNotByDefault, "CSI inline volume of driver %s is provided by the driver (often secrets); name it in %s to copy it", v.CSI.Driver, AnnotationInclude)
	}
	switch {
	case v.PersistentVolumeClaim != nil:
		it.PVC = v.PersistentVolumeClaim.ClaimName
	case v.Ephemeral != nil:
		it.PVC = p.Name + "-" + v.Name // the claim the ephemeral controller makes
	default:
		return it, nil
	}
	c, ok := claims[p.Namespace+"/"+it.PVC]
	switch {
	case !ok:
		return skip(ReasonClaimNotFound, "claim %s/%s is not in the backup (filtered out, or not created yet)", p.Namespace, it.PVC)
	case c.Spec.VolumeMode != nil && *c.Spec.VolumeMode == corev1.PersistentVolumeBlock:
		return skip(ReasonBlockVolume, "claim %s/%s is a block volume: cairn copies file systems", p.Namespace, it.PVC)
	case c.Spec.VolumeName == "" || c.Status.Phase != corev1.ClaimBound:
		return skip(ReasonClaimUnbound, "claim %s/%s is %s, not bound to a volume", p.Namespace, it.PVC, cmp.Or(string(c.Status.Phase), "in no phase"))
	}
	it.PV = c.Spec.VolumeName
	it.StorageClass = ptrValue(c.Spec.StorageClassName)
	if q, ok := c.Status.Capacity[corev1.ResourceStorage]; ok {
		it.Size = q.String()
	} else if q, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
		it.Size = q.String()
	}
	return it, nil
}

// neverCopied says why a volume of this kind is never copied, or "".
func neverCopied(s corev1.VolumeSource) string {
	switch {
	case s.HostPath != nil:
		return "node files, not the pod's"
	case s.Secret != nil, s.ConfigMap != nil, s.Projected != nil, s.DownwardAPI != nil:
		return "made from objects the backup holds as manifests"
	case s.Image != nil:
		return "read-only image content, pulled again on restore"
	}
	return ""
}

// sourceName is the JSON name of the volume source's set field.
func sourceName(s corev1.VolumeSource) string {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&s)
	if err != nil {
		return "unknown"
	}
	for k := range m {
		return k // exactly one field is set in a valid pod
	}
	return "unknown"
}

func ptrValue(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

type annotations struct {
	include, exclude []string
	excludeKey       string
}

// readAnnotations reads the include and exclude lists. When a pod carries
// both spellings of one, cairn's wins and Velero's is ignored: it was
// written for this tool, while a Velero annotation next to it is most
// likely left over from the move; merging the two would resurrect
// volumes the newer annotation dropped. Names the pod has no volume for
// are warned about.
func readAnnotations(p *corev1.Pod, plan *Plan) annotations {
	var a annotations
	read := func(key, velero string) ([]string, string) {
		v, ok := p.Annotations[key]
		vv, vok := p.Annotations[velero]
		switch {
		case ok && vok && v != vv:
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("pod %s/%s has both %s and %s; using %s", p.Namespace, p.Name, key, velero, key))
		case !ok && vok:
			v, key = vv, velero
		}
		var names []string
		for n := range strings.SplitSeq(v, ",") {
			if n = strings.TrimSpace(n); n == "" {
				continue
			}
			if !slices.ContainsFunc(p.Spec.Volumes, func(vol corev1.Volume) bool { return vol.Name == n }) {
				plan.Warnings = append(plan.Warnings, fmt.Sprintf("pod %s/%s: %s names volume %q, which the pod does not have", p.Namespace, p.Name, key, n))
			}
			names = append(names, n)
		}
		return names, key
	}
	a.include, _ = read(AnnotationInclude, VeleroAnnotationInclude)
	a.exclude, a.excludeKey = read(AnnotationExclude, VeleroAnnotationExclude)
	return a
}
