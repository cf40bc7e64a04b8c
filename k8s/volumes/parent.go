package volumes

import (
	"cmp"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/snapshot"
)

// Hint is the item's parent hint (VolumeBackupSpec.Parent). Only a real
// claim gets a PVC hint: an ephemeral volume's claim is named after the
// pod but is a new, empty volume each time the pod is made.
func (it Item) Hint() volapi.ParentHint {
	h := volapi.ParentHint{Namespace: it.Namespace, Workload: it.Workload, Volume: it.Volume}
	if it.Source == "persistentVolumeClaim" && it.PVC != "" {
		h.PVC = it.Namespace + "/" + it.PVC
	}
	return h
}

// Spec is the VolumeBackupSpec the CLI creates for the item.
func (it Item) Spec(backup string, r volapi.RepositoryRef, up volapi.UploaderOptions) volapi.VolumeBackupSpec {
	return volapi.VolumeBackupSpec{
		Node: it.Node, Pod: volapi.PodRef{Namespace: it.Namespace, Name: it.Pod, UID: it.PodUID},
		Volume: it.Volume, PVC: it.PVC, PV: it.PV, Repository: r, BackupName: backup,
		Parent: it.Hint(), Uploader: up,
	}
}

// SnapshotTags are the tags of a volume's own snapshot: the backup it
// belongs to, what ChooseParent matches later, and the pod for people.
// extra (VolumeBackupSpec.Tags) come last. Empty hint fields give no tag.
func SnapshotTags(backup string, pod volapi.PodRef, h volapi.ParentHint, extra []string) []string {
	tags := []string{layout.TagVolumeOf + backup}
	add := func(prefix, v string) {
		if v != "" {
			tags = append(tags, prefix+v)
		}
	}
	add(layout.TagPVC, h.PVC)
	add(layout.TagPodNamespace, h.Namespace)
	add(layout.TagWorkload, h.Workload)
	add(layout.TagPodVolume, h.Volume)
	add(layout.TagPod, pod.Namespace+"/"+pod.Name)
	return append(tags, extra...)
}

// How a parent was chosen.
const (
	ParentSameClaim    = "same claim"
	ParentSameWorkload = "same namespace, workload and volume name"
)

// ChooseParent picks the parent for a volume backup among earlier
// snapshots: the newest volume snapshot (one tagged volume-of=) of the
// same claim; failing that, the newest of the same namespace, owning
// workload and volume name (a Deployment's replaced pod, an emptyDir).
// A claim outlives its pods, so it is the better match; a looser one
// only costs reading files again (the archiver trusts a parent's file
// only when size, times and inode agree), never wrong data. It returns
// nil when nothing matches, and how it chose.
func ChooseParent(sns []*snapshot.Snapshot, h volapi.ParentHint) (*snapshot.Snapshot, string) {
	vols := slices.DeleteFunc(slices.Clone(sns), func(s *snapshot.Snapshot) bool {
		return !slices.ContainsFunc(s.Tags, func(t string) bool { return strings.HasPrefix(t, layout.TagVolumeOf) })
	})
	// Newest first; the ID breaks ties so that the choice is the same
	// whatever order the snapshots were listed in.
	slices.SortFunc(vols, func(a, b *snapshot.Snapshot) int {
		return cmp.Or(b.Time.Compare(a.Time), cmp.Compare(b.ID.String(), a.ID.String()))
	})
	if h.PVC != "" {
		if i := slices.IndexFunc(vols, func(s *snapshot.Snapshot) bool { return s.HasTag(layout.TagPVC + h.PVC) }); i >= 0 {
			return vols[i], ParentSameClaim
		}
	}
	if h.Namespace != "" && h.Workload != "" && h.Volume != "" {
		if i := slices.IndexFunc(vols, func(s *snapshot.Snapshot) bool {
			return s.HasTag(layout.TagPodNamespace+h.Namespace) && s.HasTag(layout.TagWorkload+h.Workload) && s.HasTag(layout.TagPodVolume+h.Volume)
		}); i >= 0 {
			return vols[i], ParentSameWorkload
		}
	}
	return nil, ""
}
