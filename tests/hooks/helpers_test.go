package hooks

import (
	"bytes"
	"context"
	"encoding/json"
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

	khooks "github.com/cairn-backup/cairn/k8s/hooks"
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/tests/node"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// env is one test's repository, namespaces and clients.
type env struct {
	t       *testing.T
	dir     string
	cs      *kubernetes.Clientset
	ex      *khooks.Executor
	agentNS string
	sfx     string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cl, err := kube.Connect(kube.ClientOptions{Kubeconfig: clu.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := khooks.NewExecutor(cl.Config)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: t.TempDir(), cs: kubernetes.NewForConfigOrDie(cl.Config), ex: ex,
		sfx: fmt.Sprintf("%d", time.Now().UnixNano()%1e6)}
	e.agentNS = "cairn-" + e.sfx
	if err := volapi.Install(t.Context(), cl.Dynamic, nil); err != nil {
		t.Fatal(err)
	}
	e.namespace(e.agentNS)
	e.cairn(0, "init")
	return e
}

func (e *env) namespace(ns string) {
	e.t.Helper()
	_, err := e.cs.CoreV1().Namespaces().Create(e.t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) baseEnv() []string {
	return append(os.Environ(), "CAIRN_REPOSITORY="+filepath.Join(e.dir, "repo"), "CAIRN_PASSWORD=hooks", "CAIRN_KDF_N=1024",
		"XDG_CACHE_HOME="+filepath.Join(e.dir, "xdg-cache"))
}

// cairn runs the CLI and fails unless it exits with want.
func (e *env) cairn(want int, args ...string) string {
	e.t.Helper()
	out, errs, code := e.cairnCode(args...)
	if code != want {
		e.t.Fatalf("cairn %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errs)
	}
	return out
}

func (e *env) cairnCode(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	cmd := exec.Command(cairnBin, args...)
	cmd.Env = e.baseEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// agent runs `cairn cluster agent` in the node's namespaces, where the
// kubelet's volume directories are; stopped at the end of the test.
func (e *env) agent() {
	e.t.Helper()
	var mu sync.Mutex
	var log bytes.Buffer
	cmd := nd.Command(context.Background(), cairnBin, "cluster", "agent", "--kubeconfig", nodeKubeconfig,
		"--node-name", nd.Name, "--kubelet-root", nd.RootDir, "--agent-namespace", e.agentNS, "--heartbeat", "300ms",
		"--cache-dir", filepath.Join(e.dir, "agent-cache"))
	cmd.Env = append(e.baseEnv(), "POD_NAME=agent-hooks")
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return log.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	e.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if e.t.Failed() {
			mu.Lock()
			e.t.Logf("agent log:\n%s", log.String())
			mu.Unlock()
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// pod creates a busybox pod with an emptyDir "data" at /data that sleeps.
func (e *env) pod(ns, name string, annotations map[string]string) {
	e.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "main", Image: node.BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command:      []string{"sleep", "3600"},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes:                       []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			TerminationGracePeriodSeconds: new(int64),
		},
	}
	if _, err := e.cs.CoreV1().Pods(ns).Create(e.t.Context(), p, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// running waits until the pods are Running.
func (e *env) running(ns string, names ...string) {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for _, n := range names {
		for {
			p, err := e.cs.CoreV1().Pods(ns).Get(e.t.Context(), n, metav1.GetOptions{})
			if err == nil && p.Status.Phase == corev1.PodRunning {
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("pod %s/%s not Running: %v %+v", ns, n, err, p.Status)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// exec runs cmd in the pod's main container.
func (e *env) exec(ns, pod string, cmd ...string) (string, error) {
	out, err := e.ex.Exec(e.t.Context(), ns, pod, "main", cmd)
	return out.Stdout, err
}

func (e *env) deleteNamespace(ns string) {
	err := e.cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		e.t.Logf("delete namespace %s: %v", ns, err)
	}
}

// hook finds the result of a pod's hook of a phase, or nil.
func hook(hs []layout.HookResult, pod, phase string) *layout.HookResult {
	for i := range hs {
		if hs[i].Pod == pod && hs[i].Phase == phase {
			return &hs[i]
		}
	}
	return nil
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}
