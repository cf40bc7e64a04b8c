package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/node"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const app = "nginx-example"

// appYAML is the application: a file server on a claim, with a shell
// sidecar for exec and hooks, and a Service. Its pod asks for the claim's
// data to be backed up and writes a marker before the copy.
func appYAML(ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: html, namespace: %[1]s}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: %[2]s
  resources: {requests: {storage: 100Mi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: nginx}}
  template:
    metadata:
      labels: {app: nginx}
      annotations:
        backup.cairn.io/backup-volumes: html
        pre.hook.backup.cairn.io/container: shell
        pre.hook.backup.cairn.io/command: '["sh", "-c", "echo frozen > %[3]s/hook-marker.txt && sync"]'
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: %[4]s
        imagePullPolicy: Never
        ports: [{containerPort: %[5]d}]
        volumeMounts: [{name: html, mountPath: %[3]s}]
      - name: shell
        image: %[6]s
        imagePullPolicy: Never
        command: [sleep, "3600"]
        volumeMounts: [{name: html, mountPath: %[3]s}]
      volumes:
      - name: html
        persistentVolumeClaim: {claimName: html}
---
apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: %[1]s}
spec:
  selector: {app: nginx}
  ports: [{port: 80, targetPort: %[5]d}]
`, ns, node.LocalStorageClass, node.FileServerRoot, node.FileServerImage, node.FileServerPort, node.BusyboxImage)
}

type drill struct {
	t    *testing.T
	dir  string
	repo string
	pw   string
}

func (d *drill) env() []string {
	return append(os.Environ(), "KUBECONFIG="+clu.Kubeconfig, "CAIRN_REPOSITORY="+d.repo, "CAIRN_PASSWORD_FILE="+d.pw,
		"CAIRN_KDF_N=1024", "XDG_CACHE_HOME="+filepath.Join(d.dir, "xdg-cache"))
}

// cairn runs the CLI as a user would and fails the test unless it exits 0.
func (d *drill) cairn(args ...string) string {
	d.t.Helper()
	cmd := exec.Command(cairnBin, args...)
	cmd.Env = d.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		d.t.Fatalf("cairn %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func (d *drill) kubectl(args ...string) string {
	d.t.Helper()
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", clu.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// runningPod waits for the app's pod in ns to run and returns its name.
func (d *drill) runningPod(ns string, limit time.Duration) string {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		pods, err := cs.CoreV1().Pods(ns).List(d.t.Context(), metav1.ListOptions{LabelSelector: "app=nginx"})
		if err == nil {
			for _, p := range pods.Items {
				ready := p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil
				for _, c := range p.Status.ContainerStatuses {
					ready = ready && c.Ready
				}
				if ready {
					return p.Name
				}
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no running nginx pod in %s after %s: %s", ns, limit, d.kubectl("get", "pods,pvc", "-n", ns, "-o", "wide"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// get fetches a file from the pod's web server through the API server's
// pod proxy; "" when it does not answer.
func get(ctx context.Context, ns, pod, file string) (string, error) {
	body, err := cs.CoreV1().RESTClient().Get().Namespace(ns).Resource("pods").
		Name(fmt.Sprintf("%s:%d", pod, node.FileServerPort)).SubResource("proxy").Suffix(file).DoRaw(ctx)
	return string(body), err
}

func (d *drill) serves(ns, pod string, files map[string]string) {
	d.t.Helper()
	for f, want := range files {
		var got string
		var err error
		for i := 0; i < 40; i++ { // the server may just be starting
			if got, err = get(d.t.Context(), ns, pod, f); err == nil && got == want {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if err != nil || got != want {
			d.t.Errorf("%s/%s serves %s: %q (%v), want %q", ns, pod, f, got, err, want)
		}
	}
}

// TestDisasterDrill is the drill of the issue: install, back up with a
// hook, destroy, restore, browse, and restore a copy beside the original.
func TestDisasterDrill(t *testing.T) {
	ctx := t.Context()
	d := &drill{t: t, dir: t.TempDir()}
	d.repo = filepath.Join(d.dir, "repo")
	d.pw = filepath.Join(d.dir, "password")
	if err := os.WriteFile(d.pw, []byte("drill-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := nd.LocalVolumes(ctx, cs, 3, "1Gi"); err != nil { // the claim, its restore, the copy
		t.Fatal(err)
	}
	d.cairn("init")
	start := time.Now()
	d.cairn("cluster", "install", "--image", cairnImage, "--image-pull-policy", "Never",
		"--kubelet-root", nd.RootDir, "--wait", "--timeout", "3m")
	t.Logf("installed, agent running, in %s", time.Since(start).Round(time.Millisecond))

	apply := exec.Command(kubectl, "--kubeconfig", clu.Kubeconfig, "apply", "-f", "-")
	apply.Stdin = strings.NewReader(appYAML(app))
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("apply the app: %v\n%s", err, out)
	}
	pod := d.runningPod(app, 2*time.Minute)
	d.kubectl("exec", "-n", app, pod, "-c", "shell", "--", "sh", "-c",
		"echo '<h1>hello from cairn</h1>' > "+node.FileServerRoot+"/index.html && mkdir -p "+node.FileServerRoot+"/docs && echo deep > "+node.FileServerRoot+"/docs/page.txt")
	files := map[string]string{"index.html": "<h1>hello from cairn</h1>\n", "docs/page.txt": "deep\n"}
	d.serves(app, pod, files)

	// Back up: manifests, and the volume through the agent pod, after
	// the pre-hook wrote its marker.
	start = time.Now()
	d.cairn("cluster", "backup", "nightly", "--include-namespaces", app)
	t.Logf("backup in %s", time.Since(start).Round(time.Millisecond))
	exported := filepath.Join(d.dir, "exported")
	d.cairn("cluster", "export-volume", "nightly", "--pvc", app+"/html", "--target", exported)
	for f, want := range map[string]string{"index.html": files["index.html"], "docs/page.txt": "deep\n", "hook-marker.txt": "frozen\n"} {
		if got, err := os.ReadFile(filepath.Join(exported, f)); err != nil || string(got) != want {
			t.Errorf("backup holds %s: %q (%v), want %q", f, got, err, want)
		}
	}
	d.browse(pod)

	// The disaster: the namespace and the volume are gone.
	pvName := d.boundPV(app, "html")
	d.kubectl("delete", "namespace", app, "--wait=true", "--timeout=120s")
	d.kubectl("delete", "pv", pvName, "--wait=true", "--timeout=60s")

	start = time.Now()
	d.cairn("cluster", "restore", "nightly")
	pod = d.runningPod(app, 3*time.Minute)
	t.Logf("restored and serving in %s", time.Since(start).Round(time.Millisecond))
	d.serves(app, pod, files)
	if d.boundPV(app, "html") == pvName {
		t.Errorf("the restored claim is bound to the deleted volume %s", pvName)
	}

	// A copy beside the original: both serve, the original is untouched.
	copyNS := app + "-copy"
	d.cairn("cluster", "restore", "nightly", "--namespace-mappings", app+":"+copyNS)
	copyPod := d.runningPod(copyNS, 3*time.Minute)
	d.serves(copyNS, copyPod, files)
	d.kubectl("exec", "-n", copyNS, copyPod, "-c", "shell", "--", "sh", "-c", "echo changed-in-copy > "+node.FileServerRoot+"/index.html")
	d.serves(app, pod, files)
	if p := d.runningPod(app, time.Minute); p != pod {
		t.Errorf("the original pod changed from %s to %s while the copy was restored", pod, p)
	}
}

// boundPV waits for the claim to bind and returns its volume's name.
func (d *drill) boundPV(ns, claim string) string {
	d.t.Helper()
	for i := 0; ; i++ {
		pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(d.t.Context(), claim, metav1.GetOptions{})
		if err == nil && pvc.Spec.VolumeName != "" && pvc.Status.Phase == corev1.ClaimBound {
			return pvc.Spec.VolumeName
		}
		if i == 120 {
			d.t.Fatalf("claim %s/%s not bound: %v", ns, claim, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// browse mounts the repository and finds the pod's files under
// namespaces/<ns>/<backup>/pods/<pod>/<volume>/.
func (d *drill) browse(pod string) {
	d.t.Helper()
	mnt := filepath.Join(d.dir, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		d.t.Fatal(err)
	}
	cmd := exec.Command(cairnBin, "mount", mnt)
	cmd.Env = d.env()
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			_ = exec.Command("fusermount3", "-u", "-z", mnt).Run()
		}
	}()
	want := filepath.Join(mnt, "namespaces", app, "nightly", "pods", pod, "html", "index.html")
	var data []byte
	var err error
	for i := 0; i < 100; i++ {
		if data, err = os.ReadFile(want); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || !strings.Contains(string(data), "hello from cairn") {
		var seen []string
		_ = filepath.WalkDir(filepath.Join(mnt, "namespaces"), func(p string, e fs.DirEntry, err error) error {
			if err == nil && len(seen) < 40 {
				seen = append(seen, strings.TrimPrefix(p, mnt))
			}
			if errors.Is(err, fs.ErrPermission) {
				return fs.SkipDir
			}
			return nil
		})
		d.t.Errorf("mount: %s: %q (%v); mount shows %v; log: %s", want, data, err, seen, logs.String())
	}
}
