// Package volapi is the API between the cairn CLI and its node agents: the
// VolumeBackup and VolumeRestore custom resources (group cairn.io, version
// v1alpha1) as Go types, their conversion to and from the unstructured
// objects the dynamic client speaks, and the installation of their CRDs
// (the YAML is in deploy/crds). The CLI creates the items; the agent of
// the item's node does the volume I/O and reports through the status
// subresource.
package volapi

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The API group and version of the volume resources.
const (
	Group   = "cairn.io"
	Version = "v1alpha1"
)

// Resources the dynamic client addresses.
var (
	VolumeBackupResource  = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "volumebackups"}
	VolumeRestoreResource = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "volumerestores"}
)

// Labels on every item. An agent lists and watches the items of its node
// with the selector LabelNode=<node> (a label, not a field: label
// selectors work on custom resources on every API server version, field
// selectors need selectableFields); the CLI waits for the items of one
// backup or restore by its name label.
const (
	LabelNode    = "cairn.io/node"
	LabelBackup  = "cairn.io/backup-name"  // same key as layout.LabelBackupName
	LabelRestore = "cairn.io/restore-name" // same key as layout.LabelRestoreName
)

// Phase is where an item is. New items have an empty or New phase; only the
// owning agent moves an item on, and Completed and Failed are final.
type Phase string

// The phases of an item.
const (
	PhaseNew        Phase = "New"
	PhaseInProgress Phase = "InProgress"
	PhaseCompleted  Phase = "Completed"
	PhaseFailed     Phase = "Failed"
)

// Done reports whether p is final.
func (p Phase) Done() bool { return p == PhaseCompleted || p == PhaseFailed }

// PodRef names a pod; UID pins the instance (a pod re-created under the
// same name is another pod with another kubelet directory).
type PodRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
}

// RepositoryRef says which repository an item belongs to. The agent is
// configured with its repository; it fails an item whose ID differs
// rather than write into the wrong one.
type RepositoryRef struct {
	ID       string `json:"id"`                 // repository config ID, hex
	Location string `json:"location,omitempty"` // without credentials, for people
}

// ParentHint is what the agent matches earlier volume snapshots' tags
// against (layout.TagPVC, TagPodNamespace, TagWorkload, TagPodVolume) to
// choose a parent; see volumes.ChooseParent.
type ParentHint struct {
	PVC       string `json:"pvc,omitempty"` // "<namespace>/<claim>"
	Namespace string `json:"namespace,omitempty"`
	Workload  string `json:"workload,omitempty"` // "<Kind>/<name>"
	Volume    string `json:"volume,omitempty"`
}

// UploaderOptions tune the agent's backup of one volume.
type UploaderOptions struct {
	ParallelFiles int32    `json:"parallelFiles,omitempty"` // 0 = the agent's default
	Excludes      []string `json:"excludes,omitempty"`      // patterns, as `cairn backup --exclude`
}

// Progress counts bytes while an item runs.
type Progress struct {
	BytesDone  int64 `json:"bytesDone,omitempty"`
	BytesTotal int64 `json:"bytesTotal,omitempty"`
}

// Ownership is the status part that lets a restarted agent tell a
// half-done item: an InProgress item whose Agent is not the running
// instance, or whose Heartbeat is stale, was left by a dead agent and is
// retried or failed, never reported done.
type Ownership struct {
	Agent string `json:"agent,omitempty"` // "<node>/<pod>/<start time>" of the owning agent
	// Heartbeat is a MicroTime: a live owner's renewals must not look
	// up to a second older than they are.
	Heartbeat *metav1.MicroTime `json:"heartbeat,omitempty"`
	Attempts  int32             `json:"attempts,omitempty"`
}

// VolumeBackup asks the agent of Spec.Node to copy one pod volume.
type VolumeBackup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              VolumeBackupSpec   `json:"spec"`
	Status            VolumeBackupStatus `json:"status,omitempty"`
}

// VolumeBackupSpec is written by the CLI and never changed.
type VolumeBackupSpec struct {
	Node       string          `json:"node"`
	Pod        PodRef          `json:"pod"`
	Volume     string          `json:"volume"`        // the pod's volume name
	PVC        string          `json:"pvc,omitempty"` // claim (pod's namespace) when PVC-backed
	PV         string          `json:"pv,omitempty"`  // its bound PV: the kubelet directory's name
	Repository RepositoryRef   `json:"repository"`
	BackupName string          `json:"backupName"`
	Tags       []string        `json:"tags,omitempty"` // extra tags for the volume's snapshot
	Parent     ParentHint      `json:"parent,omitempty"`
	Uploader   UploaderOptions `json:"uploader,omitempty"`
}

// VolumeBackupStatus is written by the owning agent.
type VolumeBackupStatus struct {
	Phase            Phase  `json:"phase,omitempty"`
	SnapshotID       string `json:"snapshotID,omitempty"` // the volume's own snapshot
	ParentSnapshotID string `json:"parentSnapshotID,omitempty"`
	Tree             string `json:"tree,omitempty"` // stitched in at /volumes/<ns>/<pod>/<volume>
	Files            int64  `json:"files,omitempty"`
	Bytes            int64  `json:"bytes,omitempty"`
	BytesAdded       int64  `json:"bytesAdded,omitempty"`
	Errors           int64  `json:"errors,omitempty"` // files that could not be read
	// What the parent saved: files found unchanged were not read again
	// (BytesRead counts what was).
	FilesNew        int64        `json:"filesNew,omitempty"`
	FilesChanged    int64        `json:"filesChanged,omitempty"`
	FilesUnmodified int64        `json:"filesUnmodified,omitempty"`
	BytesRead       int64        `json:"bytesRead,omitempty"`
	Progress        *Progress    `json:"progress,omitempty"`
	StartTime       *metav1.Time `json:"startTime,omitempty"`
	CompletionTime  *metav1.Time `json:"completionTime,omitempty"`
	Message         string       `json:"message,omitempty"`
	Ownership       `json:",inline"`
}

// VolumeBackupList is a list of VolumeBackups.
type VolumeBackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VolumeBackup `json:"items"`
}

// VolumeRestore asks the agent of the restored pod's node to fill one of
// its volumes from a backup, then write the done marker the pod's init
// container waits for.
type VolumeRestore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              VolumeRestoreSpec   `json:"spec"`
	Status            VolumeRestoreStatus `json:"status,omitempty"`
}

// VolumeRestoreSpec is written by the CLI, which creates the item right
// after the pod, with the pod's UID and no node. Node (and the LabelNode
// label) is set once the pod is scheduled, by the agent of that node,
// which watches the pods it runs (k8s/agent); nothing else changes.
type VolumeRestoreSpec struct {
	Node        string        `json:"node,omitempty"`
	Pod         PodRef        `json:"pod"`
	Volume      string        `json:"volume"`
	PVC         string        `json:"pvc,omitempty"` // the new claim; its PV is read when the pod runs
	Repository  RepositoryRef `json:"repository"`
	RestoreName string        `json:"restoreName"`
	Source      RestoreSource `json:"source"`
	DoneMarker  string        `json:"doneMarker"` // file name at the volume's root, written last
}

// RestoreSource is the volume's tree in the backup.
type RestoreSource struct {
	SnapshotID string `json:"snapshotID"`     // the backup's snapshot
	Tree       string `json:"tree"`           // the tree at Path in it
	Path       string `json:"path,omitempty"` // /volumes/<ns>/<pod>/<volume>, for people
}

// VolumeRestoreStatus is written by the owning agent.
type VolumeRestoreStatus struct {
	Phase          Phase        `json:"phase,omitempty"`
	Files          int64        `json:"files,omitempty"`
	Bytes          int64        `json:"bytes,omitempty"`
	Errors         int64        `json:"errors,omitempty"` // files that could not be restored
	Progress       *Progress    `json:"progress,omitempty"`
	StartTime      *metav1.Time `json:"startTime,omitempty"`
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	Message        string       `json:"message,omitempty"`
	Ownership      `json:",inline"`
}

// VolumeRestoreList is a list of VolumeRestores.
type VolumeRestoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VolumeRestore `json:"items"`
}
