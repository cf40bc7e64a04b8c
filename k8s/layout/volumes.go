package layout

import (
	"path"
	"strings"
)

// VolumePath is the slash path of a pod volume's tree in a backup
// snapshot: /volumes/<namespace>/<pod>/<volume>.
func VolumePath(namespace, pod, volume string) string {
	return path.Join(VolumesPath, namespace, pod, volume)
}

// Path is where the volume's files are in the backup snapshot.
func (v *VolumeInfo) Path() string { return VolumePath(v.Namespace, v.Pod, v.Volume) }

// Claim is the name of the PersistentVolumeClaim behind the volume, or ""
// for a volume without one. PVC may be recorded as "<claim>" or, like the
// pvc= tag, as "<namespace>/<claim>".
func (v *VolumeInfo) Claim() string {
	if ns, claim, ok := strings.Cut(v.PVC, "/"); ok && ns == v.Namespace {
		return claim
	}
	return v.PVC
}
