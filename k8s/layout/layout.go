// Package layout is the shape of a Kubernetes backup snapshot: the paths
// of its files, its tag names and the backup.json types. It imports no
// Kubernetes client, so that everything that reads such snapshots (the
// FUSE mount, the backup catalog, the volume agent) shares one copy.
package layout

import (
	"path"
	"strings"
	"time"
)

// A Kubernetes backup is one snapshot whose tree is laid out like this (the
// FUSE mount and the volume agent rely on it):
//
//	/backup.json
//	/resources/cluster/<resource>.<group>/<name>.yaml      (core group: <resource>)
//	/resources/namespaces/<ns>/<resource>.<group>/<name>.yaml
//	/volumes/<ns>/<pod>/<volume>/…
//	/logs/backup.log
const (
	BackupInfoFile = "backup.json"
	ResourcesDir   = "resources"
	VolumesDir     = "volumes"
	LogsDir        = "logs"
	BackupLogFile  = "backup.log"
	ClusterDir     = "cluster"    // under ResourcesDir: cluster-scoped objects
	NamespacesDir  = "namespaces" // under ResourcesDir: one directory per namespace

	// Absolute paths of the trees that hold one directory per namespace.
	NamespaceResourcesPath = "/" + ResourcesDir + "/" + NamespacesDir
	VolumesPath            = "/" + VolumesDir

	TagBackup   = "backup="   // tag prefix naming the backup
	TagSchedule = "schedule=" // tag prefix naming the schedule that made it

	// The node agent saves each pod volume as a snapshot of its own (so
	// that its tree is referenced, and safe from prune, until the backup's
	// snapshot takes it in) tagged with these; a later backup of the same
	// volume picks its parent by them. They never carry TagBackup: a volume
	// snapshot is not a cluster backup.
	TagVolumeOf     = "volume-of=" // the cluster backup the volume belongs to
	TagPVC          = "pvc="       // "<namespace>/<claim>" of a PVC-backed volume
	TagPodNamespace = "namespace=" // the pod's namespace
	TagWorkload     = "workload="  // "<Kind>/<name>" of the pod's owning workload, or "Pod/<name>"
	TagPodVolume    = "volume="    // the pod's volume name
	TagPod          = "pod="       // "<namespace>/<pod>", for people; never used to choose a parent

	// LabelExclude on an object keeps it out of backups.
	LabelExclude = "cairn.io/exclude-from-backup"
	// Labels put on every restored object.
	LabelBackupName  = "cairn.io/backup-name"
	LabelRestoreName = "cairn.io/restore-name"
)

// ResourceDir is "<resource>.<group>", or "<resource>" for the core group.
func ResourceDir(resource, group string) string {
	if group == "" {
		return resource
	}
	return resource + "." + group
}

// SplitResourceDir undoes ResourceDir.
func SplitResourceDir(dir string) (resource, group string) {
	resource, group, _ = strings.Cut(dir, ".")
	return resource, group
}

// ManifestPath is the slash path of an object's manifest in the snapshot;
// namespace "" means cluster-scoped.
func ManifestPath(namespace, resource, group, name string) string {
	file := name + ".yaml"
	if namespace == "" {
		return path.Join("/", ResourcesDir, ClusterDir, ResourceDir(resource, group), file)
	}
	return path.Join("/", ResourcesDir, NamespacesDir, namespace, ResourceDir(resource, group), file)
}

// Phases of a backup or restore.
const (
	PhaseCompleted       = "Completed"
	PhasePartiallyFailed = "PartiallyFailed"
	PhaseFailed          = "Failed"
)

// BackupInfo is /backup.json.
type BackupInfo struct {
	Name              string            `json:"name"`
	Cluster           string            `json:"cluster"`
	CairnVersion      string            `json:"cairn_version"`
	KubernetesVersion string            `json:"kubernetes_version"`
	Spec              BackupSpec        `json:"spec"`
	Start             time.Time         `json:"start"`
	End               time.Time         `json:"end"`
	Phase             string            `json:"phase"`
	Items             map[string]int    `json:"items"` // per "<resource>.<group>"
	TotalItems        int               `json:"total_items"`
	Warnings          []string          `json:"warnings,omitempty"`
	Errors            []string          `json:"errors,omitempty"`
	Expires           *time.Time        `json:"expires,omitempty"`
	PreferredVersions map[string]string `json:"preferred_versions"` // group -> version
	Volumes           []VolumeInfo      `json:"volumes,omitempty"`
	// Hooks are the pods' backup hooks the backup ran (k8s/hooks).
	Hooks []HookResult `json:"hooks,omitempty"`
	// ResourceVersions: per "<resource>.<group>", the other versions its
	// objects are saved at (see VersionManifestPath).
	ResourceVersions map[string][]string `json:"resource_versions,omitempty"`
}

// BackupSpec records how the backup was asked for.
type BackupSpec struct {
	IncludeNamespaces       []string `json:"include_namespaces,omitempty"`
	ExcludeNamespaces       []string `json:"exclude_namespaces,omitempty"`
	IncludeResources        []string `json:"include_resources,omitempty"`
	ExcludeResources        []string `json:"exclude_resources,omitempty"`
	IncludeClusterResources *bool    `json:"include_cluster_resources,omitempty"` // nil = auto
	Selector                string   `json:"selector,omitempty"`
	OrSelectors             []string `json:"or_selectors,omitempty"`
	TTL                     string   `json:"ttl,omitempty"`
	Schedule                string   `json:"schedule,omitempty"`
}

// VolumeInfo describes one pod volume the backup was to copy: its files
// are at /volumes/<namespace>/<pod>/<volume> when Result is Completed.
type VolumeInfo struct {
	Namespace    string `json:"namespace"`
	Pod          string `json:"pod"`
	Volume       string `json:"volume"`
	PVC          string `json:"pvc,omitempty"`
	PV           string `json:"pv,omitempty"`
	StorageClass string `json:"storage_class,omitempty"`
	Size         string `json:"size,omitempty"` // the claim's capacity, e.g. "10Gi"
	Node         string `json:"node,omitempty"`
	Result       string `json:"result,omitempty"`   // VolumeCompleted, VolumeFailed or VolumeSkipped
	Snapshot     string `json:"snapshot,omitempty"` // the volume's own snapshot (tagged volume-of=)
	Files        uint64 `json:"files"`
	Bytes        uint64 `json:"bytes"`
	BytesAdded   uint64 `json:"bytes_added,omitempty"`
	Error        string `json:"error,omitempty"`  // a failed volume; makes the backup PartiallyFailed
	Reason       string `json:"reason,omitempty"` // why a volume was skipped
}

// Results of a volume.
const (
	VolumeCompleted = "Completed"
	VolumeFailed    = "Failed"
	VolumeSkipped   = "Skipped" // e.g. its pod was not running: reported, not waited for
)

// SnapshotPath is the path recorded in a backup snapshot of cluster (a
// snapshot needs one; it is not a file system path).
func SnapshotPath(cluster string) string { return "k8s://" + cluster }
