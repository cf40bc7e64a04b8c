package podvolumes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/tests/cluster"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const password = "podvolumes-password"

// env is one test's world: a cluster client, a repository, a kubelet root
// and the namespaces of the app and of the agents.
type env struct {
	t           *testing.T
	c           *cluster.Cluster
	cl          *kube.Clients
	dir         string
	repo        string
	kubeletRoot string
	appNS       string
	agentNS     string
	sfx         string
}

var (
	gvrNS   = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrNode = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	gvrPod  = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	gvrPV   = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumes"}
	gvrPVC  = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
)

func newEnv(t *testing.T, prefix string) *env {
	t.Helper()
	c := cluster.NeedShared(t)
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: c.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &env{t: t, c: c, cl: cl, dir: dir, repo: filepath.Join(dir, "repo"), kubeletRoot: filepath.Join(dir, "kubelet"),
		sfx: fmt.Sprintf("%d", time.Now().UnixNano()%1e6)}
	e.appNS, e.agentNS = prefix+"-"+e.sfx, "cairn-"+e.sfx
	ctx := t.Context()
	if err := volapi.Install(ctx, cl.Dynamic, nil); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{e.appNS, e.agentNS} {
		e.create(gvrNS, "", obj("v1", "Namespace", ns, "", nil))
	}
	// The nodes exist, or the pod garbage collector deletes their pods.
	for _, n := range []string{"node-a", "node-b"} {
		_, err := cl.Dynamic.Resource(gvrNode).Create(ctx, obj("v1", "Node", n, "", nil), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	e.cairn(0, "init")
	return e
}

func obj(apiVersion, kind, name, ns string, fields map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind}}
	for k, v := range fields {
		u.Object[k] = v
	}
	u.SetName(name)
	if ns != "" {
		u.SetNamespace(ns)
	}
	return u
}

func (e *env) create(gvr schema.GroupVersionResource, ns string, u *unstructured.Unstructured) *unstructured.Unstructured {
	e.t.Helper()
	var ri = e.cl.Dynamic.Resource(gvr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out *unstructured.Unstructured
		var err error
		if ns != "" {
			out, err = ri.Namespace(ns).Create(e.t.Context(), u, metav1.CreateOptions{})
		} else {
			out, err = ri.Create(e.t.Context(), u, metav1.CreateOptions{})
		}
		// A new namespace's default ServiceAccount comes a moment later.
		if err != nil && strings.Contains(err.Error(), "serviceaccount") && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if err != nil {
			e.t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		return out
	}
}

// claim makes a PV (CSI, as a driver would have provisioned it) pre-bound
// to a new claim, and waits until the PV controller has bound them.
func (e *env) claim(name, access string) (pv string) {
	e.t.Helper()
	pv = "pv-" + name + "-" + e.sfx
	e.create(gvrPV, "", obj("v1", "PersistentVolume", pv, "", map[string]any{"spec": map[string]any{
		"capacity": map[string]any{"storage": "1Gi"}, "accessModes": []any{access}, "storageClassName": "manual",
		"persistentVolumeReclaimPolicy": "Retain",
		"csi":                           map[string]any{"driver": "csi.test.cairn.io", "volumeHandle": pv},
		"claimRef":                      map[string]any{"namespace": e.appNS, "name": name},
	}}))
	e.t.Cleanup(func() { e.cl.Dynamic.Resource(gvrPV).Delete(context.Background(), pv, metav1.DeleteOptions{}) })
	e.create(gvrPVC, e.appNS, obj("v1", "PersistentVolumeClaim", name, e.appNS, map[string]any{"spec": map[string]any{
		"accessModes": []any{access}, "storageClassName": "manual", "volumeName": pv,
		"resources": map[string]any{"requests": map[string]any{"storage": "1Gi"}},
	}}))
	e.waitFor(90*time.Second, "claim "+name+" bound", func() bool {
		u, err := e.cl.Dynamic.Resource(gvrPVC).Namespace(e.appNS).Get(e.t.Context(), name, metav1.GetOptions{})
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		return err == nil && phase == "Bound"
	})
	return pv
}

// pod creates a pod on node with the volumes and annotations, sets it
// Running (as the kubelet would) and returns its UID.
func (e *env) pod(name, node string, annotations map[string]string, volumes ...map[string]any) string {
	e.t.Helper()
	vols := make([]any, len(volumes))
	for i, v := range volumes {
		vols[i] = v
	}
	u := obj("v1", "Pod", name, e.appNS, map[string]any{"spec": map[string]any{
		"nodeName": node, "automountServiceAccountToken": false,
		"containers": []any{map[string]any{"name": "app", "image": "registry.example/app:1"}},
		"volumes":    vols,
	}})
	u.SetAnnotations(annotations)
	created := e.create(gvrPod, e.appNS, u)
	unstructured.SetNestedField(created.Object, "Running", "status", "phase")
	if _, err := e.cl.Dynamic.Resource(gvrPod).Namespace(e.appNS).UpdateStatus(e.t.Context(), created, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return string(created.GetUID())
}

func claimVol(name, claim string) map[string]any {
	return map[string]any{"name": name, "persistentVolumeClaim": map[string]any{"claimName": claim}}
}

func emptyDirVol(name string) map[string]any {
	return map[string]any{"name": name, "emptyDir": map[string]any{}}
}

// csiDir and emptyDir are where the kubelet mounts a pod's volumes.
func (e *env) csiDir(uid, pv string) string {
	return filepath.Join(e.kubeletRoot, "pods", uid, "volumes", "kubernetes.io~csi", pv, "mount")
}

func (e *env) emptyDir(uid, vol string) string {
	return filepath.Join(e.kubeletRoot, "pods", uid, "volumes", "kubernetes.io~empty-dir", vol)
}

func (e *env) waitFor(limit time.Duration, what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *env) baseEnv() []string {
	return append(os.Environ(), "CAIRN_REPOSITORY="+e.repo, "CAIRN_PASSWORD="+password, "CAIRN_KDF_N=1024",
		"XDG_CACHE_HOME="+filepath.Join(e.dir, "xdg-cache"))
}

// cairn runs the binary and fails unless it exits with want.
func (e *env) cairn(want int, args ...string) string {
	e.t.Helper()
	cmd := exec.Command(cairnBin, args...)
	cmd.Env = e.baseEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	if code != want {
		e.t.Fatalf("cairn %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String()
}

// agentProc is a running `cairn cluster agent`.
type agentProc struct {
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// agent starts an agent for node; it is stopped (SIGTERM) at the end of
// the test and its log shown if the test failed.
func (e *env) agent(node string, extra ...string) *agentProc {
	e.t.Helper()
	args := append([]string{"cluster", "agent", "--kubeconfig", e.c.Kubeconfig, "--node-name", node,
		"--kubelet-root", e.kubeletRoot, "--agent-namespace", e.agentNS, "--heartbeat", "300ms",
		"--cache-dir", filepath.Join(e.dir, "cache-"+node)}, extra...)
	cmd := exec.Command(cairnBin, args...)
	cmd.Env = append(e.baseEnv(), "POD_NAME=agent-"+node)
	a := &agentProc{cmd: cmd, log: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = lockedWriter{a.mu, a.log}, lockedWriter{a.mu, a.log}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { cmd.Wait(); close(a.done) }()
	e.t.Cleanup(func() {
		a.stop(syscall.SIGTERM)
		if e.t.Failed() {
			e.t.Logf("agent %s log:\n%s", node, a.text())
		}
	})
	return a
}

func (a *agentProc) text() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.String()
}

func (a *agentProc) stop(sig syscall.Signal) {
	select {
	case <-a.done:
		return
	default:
	}
	a.cmd.Process.Signal(sig)
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
	}
}

// items returns the VolumeBackups of a backup by pod/volume.
func (e *env) items(backup string) map[string]*volapi.VolumeBackup {
	e.t.Helper()
	l, err := e.cl.Dynamic.Resource(volapi.VolumeBackupResource).Namespace(e.agentNS).List(e.t.Context(),
		metav1.ListOptions{LabelSelector: volapi.LabelBackup + "=" + backup})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]*volapi.VolumeBackup{}
	for i := range l.Items {
		vb, err := volapi.VolumeBackupFrom(&l.Items[i])
		if err != nil {
			e.t.Fatal(err)
		}
		out[vb.Spec.Pod.Name+"/"+vb.Spec.Volume] = vb
	}
	return out
}

// restic runs restic 0.19.1 (or the one testutil finds) on the repository.
func (e *env) restic(args ...string) string {
	e.t.Helper()
	bin := filepath.Join(os.Getenv("HOME"), ".cache", "cairn", "bin", "restic-0.19.1")
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("restic"); err != nil {
			e.t.Skip("no restic")
		}
	}
	cmd := exec.Command(bin, append([]string{"--no-cache", "-r", e.repo}, args...)...)
	cmd.Env = append(os.Environ(), "RESTIC_PASSWORD="+password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("restic %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
