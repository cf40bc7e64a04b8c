package podvolumes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/backup"
	"github.com/cairn-backup/cairn/k8s/hooks"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/cairn-backup/cairn/tests/cluster"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// a and b share a claim (copied once, from a); c's Fail pre hook fails;
// idle's claim is unbound, so nothing of it is copied.
const hookPodsYAML = `
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: shop, uid: uid-a, annotations: {backup.cairn.io/backup-volumes: d, pre.hook.backup.cairn.io/command: '["pre"]', post.hook.backup.cairn.io/command: '["post"]'}}
spec: {nodeName: node-1, containers: [{name: c, image: x}], volumes: [{name: d, persistentVolumeClaim: {claimName: shared}}]}
status: {phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: shop, uid: uid-b, annotations: {backup.cairn.io/backup-volumes: d, pre.hook.backup.velero.io/command: '["pre"]', post.hook.backup.velero.io/command: '["post"]'}}
spec: {nodeName: node-1, containers: [{name: c, image: x}], volumes: [{name: d, persistentVolumeClaim: {claimName: shared}}]}
status: {phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: shop, uid: uid-c, annotations: {backup.cairn.io/backup-volumes: v, pre.hook.backup.cairn.io/command: '["fail"]', post.hook.backup.cairn.io/command: '["post"]'}}
spec: {nodeName: node-1, containers: [{name: c, image: x}], volumes: [{name: v, emptyDir: {}}]}
status: {phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: idle, namespace: shop, uid: uid-idle, annotations: {backup.cairn.io/backup-volumes: u, pre.hook.backup.cairn.io/command: '["pre"]', post.hook.backup.cairn.io/command: '["post"]'}}
spec: {nodeName: node-1, containers: [{name: c, image: x}], volumes: [{name: u, persistentVolumeClaim: {claimName: unbound}}]}
status: {phase: Running}
`

const hookClaimsYAML = `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: shared, namespace: shop}
spec: {volumeName: pv-shared, accessModes: [ReadWriteMany]}
status: {phase: Bound}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: unbound, namespace: shop}
spec: {accessModes: [ReadWriteOnce]}
status: {phase: Pending}
`

// seenRunner records each hook with the state of the backup's items
// when it ran: how many existed, and how many were done.
type seenRunner struct {
	mu    sync.Mutex
	items func() (n, done int)
	calls []string
}

func (s *seenRunner) Exec(_ context.Context, ns, pod, _ string, cmd []string) (hooks.Output, error) {
	n, done := s.items()
	s.mu.Lock()
	s.calls = append(s.calls, fmt.Sprintf("%s %s items=%d done=%d", pod, cmd[0], n, done))
	s.mu.Unlock()
	if cmd[0] == "fail" {
		code := 1
		return hooks.Output{ExitCode: &code}, errors.New("exited with code 1")
	}
	return hooks.Output{}, nil
}

// Pre hooks run before any item of their pods exists, post hooks once the
// items are done; the pods sharing a claim both bracket its one copy; a
// failed Fail pre hook keeps its pod's item from being created; a pod
// with nothing to copy still gets both hooks.
func TestHookRunsPodHooksAroundCopies(t *testing.T) {
	cl := clients(t)
	if err := volapi.Install(t.Context(), cl.Dynamic, nil); err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("cairn-hooks-%d", time.Now().UnixNano()%1e6)
	nsRes := cl.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	if _, err := nsRes.Create(t.Context(), &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsRes.Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	r, _ := newRepo(t)
	items := cl.Dynamic.Resource(volapi.VolumeBackupResource).Namespace(ns)
	list := func() []*volapi.VolumeBackup {
		l, err := items.List(context.Background(), metav1.ListOptions{LabelSelector: volapi.LabelBackup + "=hb"})
		if err != nil {
			t.Error(err)
			return nil
		}
		var out []*volapi.VolumeBackup
		for i := range l.Items {
			vb, _ := volapi.VolumeBackupFrom(&l.Items[i])
			out = append(out, vb)
		}
		return out
	}
	run := &seenRunner{items: func() (n, done int) {
		for _, vb := range list() {
			n++
			if vb.Status.Phase.Done() {
				done++
			}
		}
		return n, done
	}}
	// The "agent" fails every item it sees, after a moment: done is done.
	stop := make(chan struct{})
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			for _, vb := range list() {
				if vb.Status.Phase.Done() {
					continue
				}
				vb.Status = volapi.VolumeBackupStatus{Phase: volapi.PhaseFailed, Message: "played agent"}
				u, _ := vb.ToUnstructured()
				items.UpdateStatus(context.Background(), u, metav1.UpdateOptions{})
			}
		}
	}()
	var rc recorder
	var errs []string
	ph := backup.NewPodHooks(run, func(string, ...any) {}, func(string, ...any) {},
		func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) })
	in := rc.input(cluster.Objects(t, hookPodsYAML))
	in.PVCs, in.Hooks = cluster.Objects(t, hookClaimsYAML), ph
	hook := Hook(Options{Dyn: cl.Dynamic, Namespace: ns, Repo: r, Backup: "hb", Timeout: 20 * time.Second, Poll: 100 * time.Millisecond})
	_, infos, err := hook(t.Context(), archiver.NewArchiver(r, archiver.ArchiveOptions{}), in)
	close(stop)
	<-agentDone
	if err != nil {
		t.Fatal(err)
	}
	calls := strings.Join(run.calls, "\n")
	// idle's hooks run first, with nothing created; a's and b's pre hooks
	// before the shared claim's item; c's fails and no item is made for
	// it; the posts once the one item is done.
	want := []string{
		"idle pre items=0 done=0", "idle post items=0 done=0",
		"a pre items=0 done=0", "b pre items=0 done=0", "c fail items=1 done=0",
		"a post items=1 done=1", "b post items=1 done=1",
	}
	if calls != strings.Join(want, "\n") {
		t.Errorf("hooks ran as\n%s\nwant\n%s", calls, strings.Join(want, "\n"))
	}
	var cInfo layout.VolumeInfo
	for _, v := range infos {
		if v.Pod == "c" {
			cInfo = v
		}
	}
	if cInfo.Result != layout.VolumeFailed || !strings.Contains(cInfo.Error, "not copied") || !strings.Contains(cInfo.Error, "exited with code 1") {
		t.Errorf("c's volume: %+v", cInfo)
	}
	if len(list()) != 1 {
		t.Errorf("items %d, want 1 (the shared claim's)", len(list()))
	}
	res := ph.Results()
	if len(res) != 7 || !slices.ContainsFunc(res, func(h layout.HookResult) bool {
		return h.Pod == "b" && h.Phase == "pre" && h.Source == "pre.hook.backup.velero.io" && h.Result == layout.HookSucceeded
	}) || len(errs) != 1 {
		t.Errorf("results %+v, errors %q", res, errs)
	}
}
