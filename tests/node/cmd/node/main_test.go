package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/cluster"
	"github.com/cairn-backup/cairn/tests/node"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestUpDown does what make node-up and make node-down do, as a person
// would: up, a pod runs (kubectl), down, and nothing of the node or the
// control plane is left on the host.
func TestUpDown(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("the node needs root")
	}
	bin, err := cluster.FindBinaries()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	cmd := filepath.Join(dir, "cairn-node")
	if out, err := exec.Command("go", "build", "-o", cmd, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	state := filepath.Join(dir, "state")
	out, err := exec.Command(cmd, "up", state).CombinedOutput()
	downDone := false
	defer func() {
		if !downDone {
			exec.Command(cmd, "down", state).Run()
		}
	}()
	if err != nil {
		t.Fatalf("up: %v: %s", err, out)
	}
	kubeconfig := filepath.Join(state, "cluster", "admin.kubeconfig")
	if !strings.Contains(string(out), "export KUBECONFIG="+kubeconfig) {
		t.Errorf("up does not say how to use the cluster:\n%s", out)
	}

	// The processes outlived up; a pod runs.
	kubectl := func(args ...string) (string, error) {
		c := exec.Command(filepath.Join(bin, "kubectl"), args...)
		c.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
		b, err := c.CombinedOutput()
		return string(b), err
	}
	if out, err := kubectl("run", "hello", "--image", node.BusyboxImage, "--image-pull-policy", "Never", "--restart", "Never",
		"--", "sh", "-c", "echo hello from the node"); err != nil {
		t.Fatalf("kubectl run: %v: %s", err, out)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err := cs.CoreV1().Pods("default").Get(context.Background(), "hello", metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod did not complete: %v %+v", err, p.Status)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if out, err := kubectl("logs", "hello"); err != nil || strings.TrimSpace(out) != "hello from the node" {
		t.Errorf("kubectl logs: %v: %q", err, out)
	}
	pvs, err := cs.CoreV1().PersistentVolumes().List(context.Background(), metav1.ListOptions{})
	if err != nil || len(pvs.Items) != localVolumes {
		t.Errorf("local PVs: %v, %d", err, len(pvs.Items))
	}
	clusterPids, _ := os.ReadFile(filepath.Join(state, "cluster", "pids"))

	out, err = exec.Command(cmd, "down", state).CombinedOutput()
	downDone = true
	if err != nil {
		t.Fatalf("down: %v: %s", err, out)
	}
	if left := node.Leftovers(filepath.Join(state, "node")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	for _, pid := range strings.Fields(string(clusterPids)) {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			t.Errorf("control plane process %s still runs", pid)
		}
	}
	if b, _ := exec.Command("pgrep", "-f", state).Output(); len(b) > 0 {
		t.Errorf("processes left: %s", b)
	}
	if _, err := os.Stat(filepath.Join(state, "node")); err == nil {
		t.Error("down left the node's state directory")
	}
	if _, err := os.Stat("/run/lock/cairn-node.detached"); err == nil {
		t.Error("the node-up marker is left")
	}
}
