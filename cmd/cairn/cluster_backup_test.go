package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/tests/cluster"
)

// secretSize is the size of shop/pw's manifest, when listed (must be > 0).
func secretSize(items []catalog.BackupItem) uint64 {
	for _, it := range items {
		if it.Resource == "secrets" && it.Name == "pw" && it.Size > 0 {
			return it.Size
		}
	}
	return 0
}

// startBackupTestCluster starts a control plane for this test (≈10 s);
// it skips without the binaries (fails in CI).
func startBackupTestCluster(t *testing.T) (*cluster.Cluster, string) {
	t.Helper()
	bin, err := cluster.FindBinaries()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{BinDir: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c, filepath.Join(bin, "kubectl")
}

// kubectlApply applies YAML to the cluster.
func kubectlApply(t *testing.T, kubectl, kubeconfig, manifests string) {
	t.Helper()
	cmd := exec.Command(kubectl, "--kubeconfig", kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifests)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

func tarGzNames(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

func TestClusterBackupCLI(t *testing.T) {
	c, kubectl := startBackupTestCluster(t)
	kc := c.Kubeconfig
	kubectlApply(t, kubectl, kc, `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: shop, labels: {tier: web}}
data: {a: b}
---
apiVersion: v1
kind: Secret
metadata: {name: pw, namespace: shop}
stringData: {p: q}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {tier: web}}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
`)
	e := newInitEnv(t)
	cl := func(args ...string) []string { return append([]string{"cluster", "--kubeconfig", kc}, args...) }

	res := e.ok(cl("backup", "shop", "--include-namespaces", "shop", "--ttl", "30d")...)
	if !strings.Contains(res.stdout, "backup shop of cluster cairn-test: Completed") || !strings.Contains(res.stdout, "snapshot ") {
		t.Errorf("backup output:\n%s", res.stdout)
	}
	e.fails(1, e.run(cl("backup", "shop")...), "already exists", "cairn cluster delete shop")
	e.fails(1, e.run(cl("backup", "Shop_1")...), "invalid backup name")
	e.fails(1, e.run(cl("backup", "x", "--ttl", "soon")...), "--ttl")
	e.fails(1, e.run(cl("backup", "x", "-l", "a in (")...), "label selector")
	e.fails(1, e.run(cl("backup", "x", "--wait=false")...), "synchronously")

	res = e.ok(append([]string{"--json"}, cl("backup", "web", "--include-namespaces", "shop", "-l", "tier=web", "--ttl", "0")...)...)
	var bj clusterBackupJSON
	if err := json.Unmarshal([]byte(res.stdout), &bj); err != nil {
		t.Fatalf("%v: %s", err, res.stdout)
	}
	if bj.Name != "web" || bj.Phase != "Completed" || bj.Items != 3 || bj.ItemsByResource["configmaps"] != 1 ||
		bj.ItemsByResource["deployments.apps"] != 1 || bj.ItemsByResource["namespaces"] != 1 || bj.Expires != nil || len(bj.SnapshotID) != 64 {
		t.Errorf("backup --json: %+v", bj)
	}

	var list []backupListJSON
	if err := json.Unmarshal([]byte(e.ok(append([]string{"--json"}, cl("backups")...)...).stdout), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "shop" || list[1].Name != "web" || list[0].Phase != "Completed" ||
		list[0].Items < 5 || list[0].Expires == nil || list[0].Cluster != "cairn-test" || list[1].Expires != nil || list[0].DataAdded == 0 {
		t.Errorf("backups --json: %+v", list)
	}
	table := e.ok(cl("backups")...).stdout
	if !strings.Contains(table, "NAME") || !strings.Contains(table, "shop") || !strings.Contains(table, "29d") || !strings.Contains(table, "2 backups") {
		t.Errorf("backups table:\n%s", table)
	}

	var d backupDescribeJSON
	if err := json.Unmarshal([]byte(e.ok(append([]string{"--json"}, cl("describe", "shop", "--details")...)...).stdout), &d); err != nil {
		t.Fatal(err)
	}
	if d.BackupInfo == nil || d.Phase != "Completed" || d.Spec.IncludeNamespaces[0] != "shop" || d.Bytes == 0 ||
		!slices.Contains(d.Resources, catalog.BackupItem{Resource: "secrets", Namespace: "shop", Name: "pw", Size: secretSize(d.Resources)}) {
		t.Errorf("describe --json: %+v", d)
	}
	text := e.ok(cl("describe", "shop", "--details")...).stdout
	for _, want := range []string{"Phase:        Completed", "Namespaces:   included: shop", "deployments.apps", "- shop/cfg", "Expires:"} {
		if !strings.Contains(text, want) {
			t.Errorf("describe lacks %q:\n%s", want, text)
		}
	}
	e.fails(1, e.run(cl("describe", "nosuch")...), "no backup is named")

	logText := e.ok(cl("logs", "shop")...).stdout
	if !strings.Contains(logText, "discovered") || !strings.Contains(logText, "backup Completed") {
		t.Errorf("logs:\n%s", logText)
	}

	t.Chdir(e.dir)
	e.ok(cl("download", "shop")...)
	names := tarGzNames(t, filepath.Join(e.dir, "shop-data.tar.gz"))
	for _, want := range []string{"resources/", "resources/cluster/namespaces/shop.yaml", "resources/namespaces/shop/configmaps/cfg.yaml",
		"resources/namespaces/shop/deployments.apps/web.yaml", "resources/namespaces/shop/secrets/pw.yaml"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not in the archive: %v", want, names)
		}
	}
	if fi, err := os.Stat(filepath.Join(e.dir, "shop-data.tar.gz")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("archive with Secrets: %v %v, want mode 0600", fi.Mode(), err)
	}
	e.fails(1, e.run(cl("download", "shop")...), "exists", "--force")
	e.ok(cl("download", "shop", "--force", "--output", "other.tgz")...)
	if n := tarGzNames(t, filepath.Join(e.dir, "other.tgz")); !slices.Equal(n, names) {
		t.Errorf("--output archive differs: %v", n)
	}

	e.fails(1, e.run(append([]string{"--read-only"}, cl("delete", "web")...)...), "read-only")
	if out := e.ok(cl("delete", "web")...).stdout; !strings.Contains(out, "cairn prune") {
		t.Errorf("delete output: %s", out)
	}
	if out := e.ok(cl("delete", "shop", "--prune")...).stdout; !strings.Contains(out, "removed") {
		t.Errorf("delete --prune output: %s", out)
	}
	if sns := e.snapshots(); len(sns) != 0 {
		t.Errorf("%d snapshots left", len(sns))
	}
	e.fails(1, e.run(cl("delete", "shop")...), "no backup is named")

	// A group whose discovery fails: saved, PartiallyFailed, exit code 3.
	kubectlApply(t, kubectl, kc, `
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1.broken.example.com}
spec: {group: broken.example.com, version: v1, groupPriorityMinimum: 100, versionPriority: 10, insecureSkipTLSVerify: true, service: {namespace: default, name: nothing}}
`)
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		res = e.run(cl("backup", "partial-"+string(rune('a'+i)), "--include-namespaces", "shop")...)
		if res.code != 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	e.fails(3, res, "PartiallyFailed", "cairn cluster logs partial-")
	if !strings.Contains(res.stderr, "error: discovery of broken.example.com/v1 failed") {
		t.Errorf("stderr:\n%s", res.stderr)
	}
}
