package cluster

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStartStop(t *testing.T) {
	bin, err := FindBinaries()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	c, err := Start(ctx, Options{BinDir: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	t.Logf("control plane ready in %v", time.Since(start).Round(time.Millisecond))
	kubectl := func(args ...string) string {
		out, err := exec.Command(filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	kubectl("create", "namespace", "probe")
	kubectl("-n", "probe", "create", "configmap", "cm", "--from-literal=a=b")
	if out := kubectl("-n", "probe", "get", "configmap", "cm", "-o", "jsonpath={.data.a}"); out != "b" {
		t.Fatalf("configmap data %q", out)
	}
	// Namespace deletion needs the controller-manager's namespace controller.
	kubectl("delete", "namespace", "probe", "--wait=true", "--timeout=60s")
	if out, _ := exec.Command(filepath.Join(bin, "kubectl"), "--kubeconfig", c.Kubeconfig, "get", "ns", "probe").CombinedOutput(); !strings.Contains(string(out), "NotFound") {
		t.Fatalf("namespace still there: %s", out)
	}
}
