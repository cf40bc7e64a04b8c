package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/tests/cluster"
)

// TestInstallCRDsDryRun prints the CRDs without a cluster, as files kubectl
// can apply: the same documents as deploy/crds.
func TestInstallCRDsDryRun(t *testing.T) {
	e := newTestEnv(t)
	res := e.ok("cluster", "install-crds", "--dry-run", "--output", "yaml", "--kubeconfig", "/nonexistent")
	docs := cluster.Objects(t, res.stdout)
	var names []string
	for _, d := range docs {
		if d.GetKind() != "CustomResourceDefinition" {
			t.Errorf("document of kind %s", d.GetKind())
		}
		names = append(names, d.GetName())
	}
	if !slices.Equal(names, []string{"volumebackups.cairn.io", "volumerestores.cairn.io"}) {
		t.Errorf("printed %v", names)
	}
	for _, f := range []string{"cairn.io_volumebackups.yaml", "cairn.io_volumerestores.yaml"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "crds", f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res.stdout, string(raw)) {
			t.Errorf("output lacks deploy/crds/%s as written", f)
		}
	}
	res = e.ok("cluster", "install-crds", "--dry-run")
	if res.stdout != "would install CRD volumebackups.cairn.io\nwould install CRD volumerestores.cairn.io\n" {
		t.Errorf("dry run said %q", res.stdout)
	}
	e.fails(1, e.run("cluster", "install-crds", "--dry-run", "--output", "json"), "unknown output format", "--output yaml")
}

// TestInstallCRDs installs into a real control plane, twice: the second run
// succeeds and changes nothing, and kubectl then serves the resources.
func TestInstallCRDs(t *testing.T) {
	c, kubectl := startBackupTestCluster(t)
	e := newTestEnv(t)
	for range 2 {
		res := e.ok("cluster", "--kubeconfig", c.Kubeconfig, "install-crds")
		if res.stdout != "CRD volumebackups.cairn.io established\nCRD volumerestores.cairn.io established\n" {
			t.Errorf("install said %q", res.stdout)
		}
	}
	res := e.ok("cluster", "--kubeconfig", c.Kubeconfig, "install-crds", "--json")
	if strings.TrimSpace(res.stdout) != `{"established":["volumebackups.cairn.io","volumerestores.cairn.io"]}` {
		t.Errorf("--json said %q", res.stdout)
	}
	out, err := exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "get", "volumebackups,volumerestores", "-A").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No resources found") {
		t.Errorf("kubectl get: %v\n%s", err, out)
	}
	out, err = exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "get", "crd", "volumebackups.cairn.io",
		"-o", "jsonpath={.metadata.managedFields[*].manager}").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cairn") {
		t.Errorf("field managers: %v %s", err, out)
	}
}
