package volapi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Kinds of the volume resources.
const (
	KindVolumeBackup  = "VolumeBackup"
	KindVolumeRestore = "VolumeRestore"
)

// NodeLabelValue is the LabelNode value for a node. Node names may be
// DNS subdomains of up to 253 characters, label values only 63: a name
// that does not fit is replaced by a hash both sides compute alike.
func NodeLabelValue(node string) string {
	if len(validation.IsValidLabelValue(node)) == 0 {
		return node
	}
	return "h-" + shortHash(node, 20)
}

// ItemName is the object name of the item for one volume of one pod
// instance in one backup or restore: the same inputs give the same name,
// so a CLI that retries creates nothing twice.
func ItemName(job, podUID, volume string) string {
	return job + "-" + shortHash(podUID+"/"+volume, 10)
}

func shortHash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

// NewVolumeBackup returns a VolumeBackup for spec, named by ItemName and
// labelled with its node and backup, in namespace ns (where the agents
// run).
func NewVolumeBackup(ns string, spec VolumeBackupSpec) *VolumeBackup {
	return &VolumeBackup{
		TypeMeta: metav1.TypeMeta{APIVersion: Group + "/" + Version, Kind: KindVolumeBackup},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      ItemName(spec.BackupName, spec.Pod.UID, spec.Volume),
			Labels:    map[string]string{LabelNode: NodeLabelValue(spec.Node), LabelBackup: spec.BackupName},
		},
		Spec: spec,
	}
}

// NewVolumeRestore is NewVolumeBackup for a restore. Without a node yet,
// the node label is left off; whoever sets Spec.Node sets it too.
func NewVolumeRestore(ns string, spec VolumeRestoreSpec) *VolumeRestore {
	labels := map[string]string{LabelRestore: spec.RestoreName}
	if spec.Node != "" {
		labels[LabelNode] = NodeLabelValue(spec.Node)
	}
	return &VolumeRestore{
		TypeMeta: metav1.TypeMeta{APIVersion: Group + "/" + Version, Kind: KindVolumeRestore},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      ItemName(spec.RestoreName, spec.Pod.UID, spec.Volume),
			Labels:    labels,
		},
		Spec: spec,
	}
}

// ToUnstructured converts vb for the dynamic client.
func (vb *VolumeBackup) ToUnstructured() (*unstructured.Unstructured, error) {
	return toUnstructured(vb, KindVolumeBackup)
}

// ToUnstructured converts vr for the dynamic client.
func (vr *VolumeRestore) ToUnstructured() (*unstructured.Unstructured, error) {
	return toUnstructured(vr, KindVolumeRestore)
}

// VolumeBackupFrom converts an object read with the dynamic client. Fields
// this version does not know are ignored (a newer CLI may write them); a
// field of the wrong type is an error.
func VolumeBackupFrom(u *unstructured.Unstructured) (*VolumeBackup, error) {
	vb := &VolumeBackup{}
	return vb, fromUnstructured(u, vb, KindVolumeBackup)
}

// VolumeRestoreFrom is VolumeBackupFrom for a VolumeRestore.
func VolumeRestoreFrom(u *unstructured.Unstructured) (*VolumeRestore, error) {
	vr := &VolumeRestore{}
	return vr, fromUnstructured(u, vr, KindVolumeRestore)
}

func toUnstructured(obj any, kind string) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", kind, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(Group + "/" + Version)
	u.SetKind(kind)
	return u, nil
}

func fromUnstructured(u *unstructured.Unstructured, obj any, kind string) error {
	gvk := u.GroupVersionKind()
	if gvk.Group != Group || gvk.Kind != kind {
		return fmt.Errorf("%s/%s is a %s, not a %s.%s", u.GetNamespace(), u.GetName(), gvk.String(), kind, Group)
	}
	if gvk.Version != Version {
		return fmt.Errorf("%s %s/%s has version %s; this cairn reads %s: use a matching cairn", kind, u.GetNamespace(), u.GetName(), gvk.Version, Version)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return fmt.Errorf("decode %s %s/%s: %w", kind, u.GetNamespace(), u.GetName(), err)
	}
	return nil
}
