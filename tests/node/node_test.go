package node

import (
	"context"
	"fmt"
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

// One control plane and one node serve all tests of the package: a node
// takes the machine-wide lock, and starting it is most of a test's time.
var (
	testCluster *cluster.Cluster
	testNode    *Node
	testClient  kubernetes.Interface
	tunables    string // the host's kernel tunables before the node started
)

func TestMain(m *testing.M) { os.Exit(runWithNode(m)) }

func runWithNode(m *testing.M) int {
	if os.Getuid() != 0 {
		fmt.Fprintln(os.Stderr, "node tests: skipped, the node needs root (network and mount namespaces, cgroups)")
		return m.Run()
	}
	if _, err := cluster.FindBinaries(); err != nil {
		fmt.Fprintln(os.Stderr, "node tests:", err)
		if os.Getenv("CI") != "" {
			return 1
		}
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute) // the node lock may be held by another package's node
	defer cancel()
	base, err := os.MkdirTemp("", "cairn-node-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(base)
	c, err := cluster.Start(ctx, cluster.Options{Dir: filepath.Join(base, "cluster"), ExtraSANs: []string{HostIP}, Scheduler: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "node tests: control plane:", err)
		return 1
	}
	defer c.Stop()
	tunables = readTunables()
	dir := filepath.Join(base, "node")
	if d := os.Getenv("CAIRN_NODE_TEST_DIR"); d != "" {
		dir = d // kept for reading the logs
	}
	start := time.Now()
	n, err := Start(ctx, Options{Cluster: c, Dir: dir, Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, "node tests:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "node tests: node Ready in %s\n", time.Since(start).Round(time.Millisecond))
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		n.Stop()
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testCluster, testNode, testClient = c, n, kubernetes.NewForConfigOrDie(cfg)
	code := m.Run()
	n.Stop()
	if left := Leftovers(n.Dir); len(left) > 0 {
		fmt.Fprintln(os.Stderr, "node tests: Stop left behind:", strings.Join(left, "; "))
		code = 1
	}
	return code
}

// needNode returns the shared node, or skips.
func needNode(t *testing.T) (*Node, kubernetes.Interface) {
	t.Helper()
	if testNode == nil {
		t.Skip("no node (needs root and tests/cluster/build-binaries.sh)")
	}
	return testNode, testClient
}

func readTunables() string {
	var out []string
	for _, s := range []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"} {
		b, _ := os.ReadFile("/proc/sys/" + s)
		out = append(out, strings.TrimSpace(string(b)))
	}
	return strings.Join(out, " ")
}

// waitPod waits until ok says the pod is where the test wants it.
func waitPod(t *testing.T, cs kubernetes.Interface, ns, name string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			if p != nil {
				t.Fatalf("pod %s: %v; status %+v (logs in %s)", name, err, p.Status, filepath.Join(testNode.Dir, "logs"))
			}
			t.Fatalf("pod %s: %v", name, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func running(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }

// TestNodeRunsPods runs a pod from the busybox image with a volume and
// execs into it through the API server; the node left the host's kernel
// tunables alone.
func TestNodeRunsPods(t *testing.T) {
	n, cs := needNode(t)
	if after := readTunables(); after != tunables {
		t.Errorf("kernel tunables changed on the host: %q -> %q", tunables, after)
	}
	ctx := context.Background()
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
	waitPod(t, cs, "default", "hello", running)
	bin, _ := cluster.FindBinaries()
	var out []byte
	var err error
	for i := 0; ; i++ {
		out, err = exec.Command(filepath.Join(bin, "kubectl"), "--kubeconfig", testCluster.Kubeconfig, "exec", "hello", "--", "cat", "/data/greeting").CombinedOutput()
		if err == nil || i == 20 {
			break
		}
		time.Sleep(300 * time.Millisecond) // the command may not have written it yet
	}
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Fatalf("exec: %v: %q (logs in %s)", err, out, filepath.Join(n.Dir, "logs"))
	}
}
