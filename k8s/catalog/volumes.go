package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"
)

// VolumeRef names one volume of a backup: a claim (Namespace and PVC) or
// a pod's volume (Namespace, Pod and Volume).
type VolumeRef struct {
	Namespace, PVC, Pod, Volume string
}

// ParseVolumeRef reads "NS/CLAIM" (a PersistentVolumeClaim) or
// "NS/POD/VOLUME" (a pod's volume).
func ParseVolumeRef(s string) (VolumeRef, error) {
	parts := strings.Split(s, "/")
	if len(parts) == 2 || len(parts) == 3 {
		ok := true
		for _, p := range parts {
			ok = ok && plainName(p)
		}
		if ok && len(parts) == 2 {
			return VolumeRef{Namespace: parts[0], PVC: parts[1]}, nil
		}
		if ok {
			return VolumeRef{Namespace: parts[0], Pod: parts[1], Volume: parts[2]}, nil
		}
	}
	return VolumeRef{}, fmt.Errorf("%q names no volume: give NAMESPACE/CLAIM or NAMESPACE/POD/VOLUME", s)
}

func (r VolumeRef) String() string {
	if r.PVC != "" {
		return "claim " + r.Namespace + "/" + r.PVC
	}
	return "volume " + r.Namespace + "/" + r.Pod + "/" + r.Volume
}

func (r VolumeRef) matches(v *layout.VolumeInfo) bool {
	// backup.json is read from the repository: an entry whose names would
	// make its path lead elsewhere in the snapshot matches nothing.
	if v.Namespace != r.Namespace || !plainName(v.Pod) || !plainName(v.Volume) {
		return false
	}
	if r.PVC != "" {
		return v.Claim() == r.PVC
	}
	return v.Pod == r.Pod && v.Volume == r.Volume
}

// plainName reports whether s is one path component.
func plainName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

var (
	// ErrVolumeNotFound: the backup holds no such volume.
	ErrVolumeNotFound = errors.New("volume not in backup")
	// ErrVolumeFailed: the backup holds the volume, but copying its
	// files failed.
	ErrVolumeFailed = errors.New("volume's backup failed")
)

// FindVolume finds the volume ref names among the volumes backup.json
// lists. A claim mounted by several pods is copied once: of the entries
// without an error, the first that has (nil: is assumed to have) its
// files in the snapshot wins. The errors say what the backup holds
// instead, or why the volume's copy failed.
func FindVolume(backup string, info *layout.BackupInfo, ref VolumeRef, has func(*layout.VolumeInfo) bool) (*layout.VolumeInfo, error) {
	var failed, listed *layout.VolumeInfo
	for i := range info.Volumes {
		v := &info.Volumes[i]
		switch {
		case !ref.matches(v):
		case v.Error != "":
			if failed == nil {
				failed = v
			}
		case has == nil || has(v):
			return v, nil
		case listed == nil:
			listed = v
		}
	}
	switch {
	case listed != nil:
		return nil, fmt.Errorf("%w: backup %s lists %s at %s, but its snapshot has no files there: the backup is damaged; run `cairn check`",
			ErrVolumeNotFound, backup, ref, listed.Path())
	case failed != nil:
		return nil, fmt.Errorf("%w: backup %s has no files of %s (pod %s/%s, volume %s): %s",
			ErrVolumeFailed, backup, ref, failed.Namespace, failed.Pod, failed.Volume, failed.Error)
	}
	return nil, fmt.Errorf("%w: backup %s has no %s; %s", ErrVolumeNotFound, backup, ref, describeVolumes(info.Volumes))
}

// describeVolumes lists the volumes a backup holds, for an error message.
func describeVolumes(vols []layout.VolumeInfo) string {
	if len(vols) == 0 {
		return "it holds no volume data"
	}
	const most = 20
	var names []string
	for i := range vols {
		if len(names) == most {
			names = append(names, fmt.Sprintf("and %d more (`cairn cluster describe` lists them)", len(vols)-most))
			break
		}
		v := &vols[i]
		s := v.Namespace + "/" + v.Pod + "/" + v.Volume
		if c := v.Claim(); c != "" {
			s += " (claim " + v.Namespace + "/" + c + ")"
		}
		if v.Error != "" {
			s += " (failed)"
		}
		names = append(names, s)
	}
	return "it holds " + strings.Join(names, ", ")
}

// MaxBackupInfoSize bounds the backup.json a reader loads into memory: the
// snapshot says how big the file is, and a repository may lie.
const MaxBackupInfoSize = 64 << 20

// ReadBackupInfoWith is ReadBackupInfo with the caller's tree loader and
// blob cache (the FUSE mount keeps its own); a backup.json larger than
// MaxBackupInfoSize is refused.
func ReadBackupInfoWith(ctx context.Context, loader *snapshot.TreeLoader, cache *browse.BlobCache, sn *snapshot.Snapshot) (*layout.BackupInfo, error) {
	n, err := snapshot.FindNode(ctx, loader, *sn.Tree, "/"+layout.BackupInfoFile)
	if err == nil && n.Size > MaxBackupInfoSize {
		return nil, fmt.Errorf("backup %s: %s is %d bytes, more than a backup.json can be; the snapshot is damaged", sn.ID.Str(), layout.BackupInfoFile, n.Size)
	}
	return readBackupInfo(ctx, loader, cache, sn)
}
