package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// LocalStorageClass is the class of the node's local PersistentVolumes:
// no provisioner, bound when a pod is scheduled (WaitForFirstConsumer),
// and the cluster's default, so that claims without a class use it too.
const LocalStorageClass = "cairn-local"

// localVolumeLabel marks the PVs LocalVolumes made.
const localVolumeLabel = "cairn.test/local-volume"

// LocalVolumes makes the StorageClass (once) and count more static local
// PersistentVolumes of capacity size (e.g. "1Gi"), each a directory under
// Dir/volumes pinned to this node. A claim binds one; the kubelet mounts
// it at pods/<uid>/volumes/kubernetes.io~local-volume/<pv name>. There is
// no provisioner: a claim restored after its PV was deleted needs a
// spare, so make one per claim the test will create.
func (n *Node) LocalVolumes(ctx context.Context, cs kubernetes.Interface, count int, size string) ([]*corev1.PersistentVolume, error) {
	quantity, err := resource.ParseQuantity(size)
	if err != nil {
		return nil, fmt.Errorf("volume size %q: %w", size, err)
	}
	bind := storagev1.VolumeBindingWaitForFirstConsumer
	retain := corev1.PersistentVolumeReclaimRetain
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: LocalStorageClass,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner:       "kubernetes.io/no-provisioner",
		VolumeBindingMode: &bind,
		ReclaimPolicy:     &retain,
	}
	if _, err := cs.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("storage class %s: %w", LocalStorageClass, err)
	}
	// Numbered on from the PVs this node made before; deleted ones'
	// directories stay, so a new PV never starts with old data.
	existing, err := os.ReadDir(filepath.Join(n.Dir, "volumes"))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	next := len(existing)
	var out []*corev1.PersistentVolume
	for i := range count {
		name := fmt.Sprintf("%s-%s-%d", LocalStorageClass, n.Name, next+i)
		dir := filepath.Join(n.Dir, "volumes", name)
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return nil, err
		}
		os.Chmod(dir, 0o777) // any pod user may write, as on a fresh disk
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{localVolumeLabel: n.Name}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: quantity},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: retain,
				StorageClassName:              LocalStorageClass,
				PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}},
				NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{n.Name},
					}}}},
				}},
			},
		}
		created, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("local volume %s: %w", name, err)
		}
		out = append(out, created)
	}
	return out, nil
}

// LocalVolumeDir is the directory on the host that a local PV made by
// LocalVolumes stores its files in.
func LocalVolumeDir(pv *corev1.PersistentVolume) string {
	if pv.Spec.Local == nil {
		return ""
	}
	return pv.Spec.Local.Path
}
