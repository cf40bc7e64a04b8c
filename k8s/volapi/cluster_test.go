package volapi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/tests/cluster"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func testClients(t *testing.T) *kube.Clients {
	t.Helper()
	c := cluster.NeedShared(t)
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: c.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func testNamespace(t *testing.T, cl *kube.Clients, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e6)
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}}
	if _, err := cl.Dynamic.Resource(gvr).Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Dynamic.Resource(gvr).Delete(context.Background(), name, metav1.DeleteOptions{}) })
	return name
}

func TestInstallAndUse(t *testing.T) {
	cl := testClients(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []string
	if err := Install(ctx, cl.Dynamic, func(n string) { got = append(got, n) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"volumebackups.cairn.io", "volumerestores.cairn.io"}) {
		t.Errorf("established %v", got)
	}
	ns := testNamespace(t, cl, "cairn-system")
	res := cl.Dynamic.Resource(VolumeBackupResource).Namespace(ns)

	// Items for two nodes; the agent of node-a lists only its own.
	var names []string
	for i, node := range []string{"node-a", "node-b", "node-a"} {
		vb := fullBackup()
		vb.Namespace, vb.Status = ns, VolumeBackupStatus{}
		vb.Spec.Node, vb.Spec.Pod.UID = node, fmt.Sprintf("uid-%d", i)
		vb = NewVolumeBackup(ns, vb.Spec)
		u, err := vb.ToUnstructured()
		if err != nil {
			t.Fatal(err)
		}
		created, err := res.Create(ctx, u, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, created.GetName())
	}
	l, err := res.List(ctx, metav1.ListOptions{LabelSelector: LabelNode + "=" + NodeLabelValue("node-a")})
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, it := range l.Items {
		mine = append(mine, it.GetName())
	}
	slices.Sort(mine)
	want := []string{names[0], names[2]}
	slices.Sort(want)
	if !slices.Equal(mine, want) {
		t.Errorf("node-a lists %v, want %v", mine, want)
	}

	// The agent reports through the status subresource; a spec change sent
	// that way is dropped by the API server.
	u, err := res.Get(ctx, names[0], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vb, err := VolumeBackupFrom(u)
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	beat := metav1.NewMicroTime(time.Now().Truncate(time.Microsecond))
	vb.Status = VolumeBackupStatus{Phase: PhaseInProgress, Progress: &Progress{BytesDone: 10, BytesTotal: 100}, StartTime: &now,
		Ownership: Ownership{Agent: "node-a/agent/1", Heartbeat: &beat, Attempts: 1}}
	vb.Spec.Volume = "changed-through-status"
	u, _ = vb.ToUnstructured()
	updated, err := res.UpdateStatus(ctx, u, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	back, err := VolumeBackupFrom(updated)
	if err != nil {
		t.Fatal(err)
	}
	if back.Status.Phase != PhaseInProgress || back.Status.Progress.BytesDone != 10 || back.Status.Agent != "node-a/agent/1" ||
		!back.Status.Heartbeat.Equal(&beat) || back.Spec.Volume != "data" {
		t.Errorf("after status update: spec.volume %q, status %+v", back.Spec.Volume, back.Status)
	}

	// The schema is enforced: an unknown phase is refused.
	unstructured.SetNestedField(updated.Object, "Exploded", "status", "phase")
	if _, err := res.UpdateStatus(ctx, updated, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "Exploded") {
		t.Errorf("bad phase: %v", err)
	}

	// A VolumeRestore works the same way.
	vr := NewVolumeRestore(ns, VolumeRestoreSpec{Node: "node-b", Pod: PodRef{Namespace: "copy", Name: "p", UID: "u"}, Volume: "data",
		Repository: RepositoryRef{ID: "abcd"}, RestoreName: "r1", Source: RestoreSource{SnapshotID: "s", Tree: "t"}, DoneMarker: ".done"})
	ur, _ := vr.ToUnstructured()
	if _, err := cl.Dynamic.Resource(VolumeRestoreResource).Namespace(ns).Create(ctx, ur, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A VolumeRestore without its source is refused by the schema.
	unstructured.RemoveNestedField(ur.Object, "spec", "source")
	ur.SetName("no-source")
	if _, err := cl.Dynamic.Resource(VolumeRestoreResource).Namespace(ns).Create(ctx, ur, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("restore without source: %v", err)
	}

	// Installing again is a no-op and keeps the items.
	if err := Install(ctx, cl.Dynamic, nil); err != nil {
		t.Fatalf("second install: %v", err)
	}
	l, err = res.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 3 {
		t.Errorf("after reinstall: %d items", len(l.Items))
	}
}
