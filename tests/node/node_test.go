package node

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/cluster"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestNodeRunsPods brings up a control plane and the node, runs a pod
// from the busybox image with a volume, execs into it through the API
// server, and checks that stopping leaves nothing behind.
func TestNodeRunsPods(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the node needs root (network and mount namespaces, cgroups)")
	}
	ctx := context.Background()
	bin, err := cluster.FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Start(ctx, cluster.Options{Dir: t.TempDir(), ExtraSANs: []string{HostIP}, Scheduler: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	before := sysctls(t)
	start := time.Now()
	dir := t.TempDir()
	if d := os.Getenv("CAIRN_NODE_TEST_DIR"); d != "" {
		dir = d // kept for reading the logs
	}
	n, err := Start(ctx, Options{Cluster: c, Dir: dir, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node Ready in %s", time.Since(start).Round(time.Millisecond))
	stopped := false
	defer func() {
		if !stopped {
			n.Stop()
		}
	}()
	if after := sysctls(t); after != before {
		t.Errorf("kernel tunables changed on the host: %q -> %q", before, after)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "main", Image: BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command:      []string{"sh", "-c", "echo hello > /data/greeting && sleep 3600"},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes:                       []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			TerminationGracePeriodSeconds: new(int64),
		},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "hello", metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not Running: %+v (logs in %s)", p.Status, filepath.Join(n.Dir, "logs"))
		}
		time.Sleep(300 * time.Millisecond)
	}
	var out []byte
	for i := 0; ; i++ {
		out, err = exec.Command(filepath.Join(bin, "kubectl"), "--kubeconfig", c.Kubeconfig, "exec", "hello", "--", "cat", "/data/greeting").CombinedOutput()
		if err == nil || i == 20 {
			break
		}
		time.Sleep(300 * time.Millisecond) // the command may not have written it yet
	}
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Fatalf("exec: %v: %q", err, out)
	}

	n.Stop()
	stopped = true
	if _, err := os.Stat("/run/netns/" + NetNS); err == nil {
		t.Error("network namespace left behind")
	}
	if ents, _ := filepath.Glob("/run/netns/cni-*"); len(ents) > 0 {
		t.Errorf("pod network namespaces left behind: %v", ents)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/pids", cgroupRoot)); err == nil {
		t.Error("cgroups left behind")
	}
	if out, _ := exec.Command("pgrep", "-f", n.Socket).Output(); len(out) > 0 {
		t.Errorf("processes left behind: %s", out)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), n.Dir) {
		t.Error("mounts left on the host")
	}
}

func sysctls(t *testing.T) string {
	var out []string
	for _, s := range []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"} {
		b, err := os.ReadFile("/proc/sys/" + s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.TrimSpace(string(b)))
	}
	return strings.Join(out, " ")
}
