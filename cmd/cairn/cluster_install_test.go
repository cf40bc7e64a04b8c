package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/install"
	"github.com/cairn-backup/cairn/tests/cluster"
	"github.com/cairn-backup/cairn/tests/testutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const installS3 = "s3:http://10.1.2.3:9000/backups"

// byName indexes objects as "Kind ns/name".
func byName(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		out[o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName()] = o
	}
	return out
}

func agentArgs(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	ds := byName(objs)["DaemonSet cairn-system/cairn-agent"]
	if ds == nil {
		t.Fatal("no DaemonSet")
	}
	cs, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "containers")
	args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	return args
}

// install --dry-run prints without a cluster: -o yaml (the root's -o
// taken as a format on this command), --output json, the repository,
// password and credentials as every command reads them.
func TestClusterInstallDryRun(t *testing.T) {
	e := newTestEnv(t)
	creds := e.writeFile("creds", "[default]\naws_access_key_id = AKID\naws_secret_access_key = SECRET\n")
	res := e.ok("cluster", "--kubeconfig", "/nonexistent", "install", "--dry-run", "-o", "yaml", "-r", installS3, "--s3-credentials-file", creds, "-o", "s3.bucket-lookup=path", "-o", "read-only=true")
	objs := cluster.Objects(t, res.stdout)
	m := byName(objs)
	if len(objs) != 17 || m["Namespace /cairn-system"] == nil || m["CustomResourceDefinition /volumebackups.cairn.io"] == nil {
		t.Errorf("%d objects: %v", len(objs), slices.Collect(func(yield func(string) bool) {
			for k := range m {
				yield(k)
			}
		}))
	}
	data, _, _ := unstructured.NestedStringMap(m["Secret cairn-system/cairn-repository"].Object, "data")
	if data["CAIRN_REPOSITORY"] != "czM6aHR0cDovLzEwLjEuMi4zOjkwMDAvYmFja3Vwcw==" || data["CAIRN_PASSWORD"] != "Z2VoZWlt" || data["AWS_ACCESS_KEY_ID"] != "QUtJRA==" {
		t.Errorf("secret %v", data)
	}
	if args := agentArgs(t, objs); args[len(args)-1] != "--option=s3.bucket-lookup=path" {
		t.Errorf("agent args %q", args)
	}
	if !strings.Contains(res.stdout, "image: "+install.DefaultImage(version)+"\n") || defaultHelperImage() != install.DefaultImage(version) {
		t.Errorf("default image is not the restore helper's %s", defaultHelperImage())
	}

	// JSON, either spelling; credentials from the environment.
	env := map[string]string{"AWS_ACCESS_KEY_ID": "envid", "AWS_SECRET_ACCESS_KEY": "envsecret", "AWS_DEFAULT_REGION": "eu-9"}
	for _, flag := range [][]string{{"-o", "json"}, {"--output", "json"}} {
		res = e.runEnv(env, append([]string{"cluster", "install", "--dry-run", "-r", installS3, "--namespace", "other"}, flag...)...)
		var list struct {
			Kind  string
			Items []map[string]any
		}
		if res.code != 0 || json.Unmarshal([]byte(res.stdout), &list) != nil || list.Kind != "List" || len(list.Items) != 17 {
			t.Fatalf("%v: exit %d\n%.300s\n%s", flag, res.code, res.stdout, res.stderr)
		}
		if !strings.Contains(res.stdout, `"AWS_REGION": "ZXUtOQ=="`) || !strings.Contains(res.stdout, `"namespace": "other"`) {
			t.Errorf("%v: region or namespace missing", flag)
		}
	}

	res = e.ok("cluster", "install", "--dry-run", "-r", "/srv/repo", "--privileged")
	if !strings.HasPrefix(res.stdout, "would apply namespace/cairn-system\n") || !strings.HasSuffix(res.stdout, "would apply daemonset.apps/cairn-agent\n") {
		t.Errorf("dry run said %q", res.stdout)
	}
	res = e.ok("cluster", "install", "--dry-run", "--output", "yaml", "--existing-secret", "mine")
	if strings.Contains(res.stdout, "kind: Secret") || !strings.Contains(res.stdout, "name: mine") {
		t.Errorf("--existing-secret made a Secret or left it unread")
	}

	e.fails(1, e.run("cluster", "install", "--dry-run", "-o", "xml"), "want yaml or json")
	e.fails(1, e.run("cluster", "install", "--dry-run", "--output", "xml"), "unknown output format")
	e.fails(1, e.run("cluster", "install", "--dry-run", "-o", "yaml", "--output", "json"), "disagree")
	e.fails(1, e.run("cluster", "install", "--dry-run", "-r", installS3), "no S3 credentials", "--s3-credentials-file")
	e.fails(1, e.run("cluster", "install", "--dry-run", "-r", "/srv/repo", "--s3-credentials-file", creds), "for an s3: repository")
	e.fails(1, e.run("cluster", "install", "--dry-run", "-r", "relative/repo"), "absolute directory")
	e.fails(1, e.run("cluster", "install", "--dry-run", "-r", "/x", "--existing-secret", "mine"), "--existing-secret")
	e.fails(1, e.run("cluster", "install", "--dry-run", "--kubelet-root", "kubelet"), "kubelet root")
	e.fails(1, e.runEnv(map[string]string{"CAIRN_REPOSITORY": ""}, "cluster", "install", "--dry-run"), "no repository")
	// Everywhere else -o stays --option key=value.
	e.fails(1, e.run("snapshots", "-o", "yaml"), "want key=value")
	e.fails(1, e.run("cluster", "install-crds", "--dry-run", "-o", "yaml"), "want key=value")
}

// helmTemplate renders deploy/chart with helm.
func helmTemplate(t *testing.T, ns string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	helm := testutil.HelmBin(t)
	cmd := exec.Command(helm, append([]string{"template", "cairn", filepath.Join("..", "..", "deploy", "chart"), "--namespace", ns, "--include-crds"}, args...)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("helm template: %v\n%s", err, stderr)
	}
	return cluster.Objects(t, string(out))
}

// The Helm chart renders what install --dry-run -o yaml prints (but the
// Namespace, which helm leaves to --create-namespace), for the same
// choices made as flags and as values.
func TestHelmChartMatchesInstall(t *testing.T) {
	testutil.HelmBin(t) // skip (fail in CI) before anything runs
	e := newTestEnv(t)
	creds := e.writeFile("creds", "AWS_ACCESS_KEY_ID=AKID\nAWS_SECRET_ACCESS_KEY=SECRET\nAWS_SESSION_TOKEN=tok\nAWS_REGION=eu-1\n")
	for _, tc := range []struct {
		name    string
		ns      string
		install []string
		helm    []string
	}{
		{"s3", "cairn-system",
			[]string{"-r", installS3, "--s3-credentials-file", creds, "--image", "reg.example/cairn:1.2"},
			[]string{"--set-string", "repository.location=" + installS3, "--set-string", "repository.password=" + testPassword,
				"--set-string", "repository.s3.accessKeyID=AKID", "--set-string", "repository.s3.secretAccessKey=SECRET",
				"--set-string", "repository.s3.sessionToken=tok", "--set-string", "repository.s3.region=eu-1",
				"--set-string", "image.repository=reg.example/cairn", "--set-string", "image.tag=1.2"}},
		{"local, privileged, options", "backups",
			[]string{"--namespace", "backups", "-r", "/srv/cairn-repo", "--privileged", "--image-pull-policy", "Never",
				"--kubelet-root", "/data/kubelet/", "-o", "s3.connections=4", "--image", "cairn:" + version, "--metrics-port", "9100"},
			[]string{"--set-string", "repository.location=/srv/cairn-repo", "--set-string", "repository.password=" + testPassword,
				"--set", "privileged=true", "--set-string", "image.pullPolicy=Never", "--set-string", "kubeletRoot=/data/kubelet/",
				"--set-json", `agent.extraArgs=["--option=s3.connections=4"]`, "--set-string", "image.repository=cairn", "--set", "metrics.port=9100"}},
		{"existing secret", "cairn-system",
			[]string{"--existing-secret", "mine", "--metrics-port", "0"},
			[]string{"--set-string", "repository.existingSecret=mine", "--set-string", "image.repository=" + install.ImageRepository, "--set", "metrics.port=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.ok(append([]string{"cluster", "install", "--dry-run", "-o", "yaml"}, tc.install...)...)
			want := byName(cluster.Objects(t, res.stdout))
			delete(want, "Namespace /"+tc.ns)
			got := byName(helmTemplate(t, tc.ns, tc.helm...))
			for k, w := range want {
				g, ok := got[k]
				if !ok {
					t.Errorf("chart lacks %s", k)
					continue
				}
				if !reflect.DeepEqual(w.Object, g.Object) {
					wy, _ := yaml.Marshal(w.Object)
					gy, _ := yaml.Marshal(g.Object)
					t.Errorf("%s differs:\ninstall:\n%s\nchart:\n%s", k, wy, gy)
				}
			}
			for k := range got {
				if want[k] == nil {
					t.Errorf("chart has %s, install does not", k)
				}
			}
		})
	}
}

// The chart ships the CRDs of deploy/crds and defaults to the image of
// this version, as install does.
func TestHelmChartFiles(t *testing.T) {
	for _, f := range []string{"cairn.io_volumebackups.yaml", "cairn.io_volumerestores.yaml"} {
		a, err := os.ReadFile(filepath.Join("..", "..", "deploy", "crds", f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "chart", "crds", f))
		if err != nil || string(a) != string(b) {
			t.Errorf("deploy/chart/crds/%s is not deploy/crds/%s (cp deploy/crds/*.yaml deploy/chart/crds/): %v", f, f, err)
		}
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "chart", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct{ AppVersion string }
	if err := yaml.Unmarshal(raw, &chart); err != nil || chart.AppVersion != version {
		t.Errorf("Chart.yaml appVersion %q, cairn is %s: %v", chart.AppVersion, version, err)
	}
}

// install and uninstall against a real control plane: everything
// applied server-side by field manager "cairn", a second install changes
// nothing, uninstall removes it and leaves the CRDs.
func TestClusterInstallUninstall(t *testing.T) {
	c, kubectl := startBackupTestCluster(t)
	e := newTestEnv(t)
	repoDir := t.TempDir()
	args := []string{"cluster", "--kubeconfig", c.Kubeconfig, "install", "-r", repoDir, "--image", "cairn:test", "--image-pull-policy", "Never"}
	first := e.ok(args...)
	lines := strings.Split(strings.TrimSpace(first.stdout), "\n")
	if len(lines) != 17 || lines[0] != "applied namespace/cairn-system" || lines[16] != "applied daemonset.apps/cairn-agent" {
		t.Errorf("install said %q", first.stdout)
	}
	get := func(what ...string) string {
		out, err := exec.Command(kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, what...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", what, err, out)
		}
		return string(out)
	}
	rv := get("-n", "cairn-system", "get", "daemonset/cairn-agent", "secret/cairn-repository", "-o", "jsonpath={.items[*].metadata.resourceVersion}")
	if res := e.ok(append(args, "--json")...); !strings.Contains(res.stdout, `"applied":["namespace/cairn-system",`) {
		t.Errorf("--json said %q", res.stdout)
	}
	if again := get("-n", "cairn-system", "get", "daemonset/cairn-agent", "secret/cairn-repository", "-o", "jsonpath={.items[*].metadata.resourceVersion}"); again != rv {
		t.Errorf("second install changed objects: %s -> %s", rv, again)
	}
	if m := get("-n", "cairn-system", "get", "daemonset/cairn-agent", "-o", "jsonpath={.metadata.managedFields[*].manager}"); m != "cairn" && !strings.HasPrefix(m, "cairn ") {
		t.Errorf("field managers %q", m)
	}
	// What --dry-run -o yaml prints, kubectl takes as it is (the namespace
	// exists now: a server-side dry run does not create it for the rest).
	printed := e.ok(append(args, "--dry-run", "-o", "yaml")...).stdout
	kc := exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-")
	kc.Stdin = strings.NewReader(printed)
	if out, err := kc.CombinedOutput(); err != nil || strings.Count(string(out), "serverside-applied (server dry run)") != 17 {
		t.Errorf("kubectl apply --dry-run=server: %v\n%s", err, out)
	}
	// A changed flag updates the DaemonSet.
	e.ok(append(args[:len(args)-2], "--image-pull-policy", "IfNotPresent")...)
	if p := get("-n", "cairn-system", "get", "daemonset/cairn-agent", "-o", "jsonpath={.spec.template.spec.containers[0].imagePullPolicy}"); p != "IfNotPresent" {
		t.Errorf("pull policy %q after update", p)
	}

	installedRBACRunsBackupAndRestore(t, c, kubectl)

	res := e.ok("cluster", "--kubeconfig", c.Kubeconfig, "uninstall", "--wait", "--timeout", "2m")
	if !strings.Contains(res.stdout, "deleted daemonset.apps/cairn-agent\n") || !strings.HasSuffix(res.stdout, "deleted namespace/cairn-system\n") || strings.Contains(res.stdout, "customresourcedefinition") {
		t.Errorf("uninstall said %q", res.stdout)
	}
	if out := get("get", "clusterroles,clusterrolebindings,namespaces", "-l", "app.kubernetes.io/part-of=cairn", "-o", "name"); out != "" {
		t.Errorf("left after uninstall: %s", out)
	}
	get("get", "crd", "volumebackups.cairn.io")
	if res := e.ok("cluster", "--kubeconfig", c.Kubeconfig, "uninstall", "--crds"); res.stdout != "deleted customresourcedefinition.apiextensions.k8s.io/volumerestores.cairn.io\ndeleted customresourcedefinition.apiextensions.k8s.io/volumebackups.cairn.io\n" {
		t.Errorf("uninstall --crds said %q", res.stdout)
	}
	if res := e.ok("cluster", "--kubeconfig", c.Kubeconfig, "uninstall"); res.stdout != "nothing of cairn's found in namespace cairn-system\n" {
		t.Errorf("uninstall of nothing said %q", res.stdout)
	}
}

// installedRBACRunsBackupAndRestore runs a backup and a restore (into a
// mapped namespace, RBAC objects included) as the installed ServiceAccount
// cairn, with a token of its own: the rights install grants are enough.
func installedRBACRunsBackupAndRestore(t *testing.T, c *cluster.Cluster, kubectl string) {
	t.Helper()
	kubectlApply(t, kubectl, c.Kubeconfig, `
apiVersion: v1
kind: Namespace
metadata: {name: rbac-app}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: rbac-app}
data: {a: b}
---
apiVersion: v1
kind: Secret
metadata: {name: pw, namespace: rbac-app}
stringData: {p: q}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: rbac-app}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: example/web:1}]}
---
# Grants what cairn itself may not do (delete): restoring it needs escalate.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cleaner, namespace: rbac-app}
rules: [{apiGroups: [""], resources: [pods], verbs: [delete]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: cleaner, namespace: rbac-app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cleaner}
subjects: [{kind: ServiceAccount, name: default, namespace: rbac-app}]
`)
	token, err := exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "-n", "cairn-system", "create", "token", "cairn").Output()
	if err != nil {
		t.Fatalf("kubectl create token: %v", err)
	}
	kc := filepath.Join(t.TempDir(), "sa.kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: " + c.Server + ", certificate-authority: " + c.CAFile() + "}}]\n" +
		"users: [{name: sa, user: {token: " + strings.TrimSpace(string(token)) + "}}]\n" +
		"contexts: [{name: sa, context: {cluster: c, user: sa}}]\ncurrent-context: sa\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newInitEnv(t)
	res := e.ok("cluster", "--kubeconfig", kc, "backup", "as-sa", "--include-namespaces", "rbac-app", "--backup-volumes=false")
	if !strings.Contains(res.stdout, "Completed") {
		t.Errorf("backup as the ServiceAccount:\n%s%s", res.stdout, res.stderr)
	}
	e.ok("cluster", "--kubeconfig", kc, "restore", "as-sa", "--namespace-mappings", "rbac-app:rbac-copy")
	out, err := exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "-n", "rbac-copy", "get", "configmap/cfg", "secret/pw", "deployment/web", "role/cleaner", "rolebinding/cleaner", "-o", "name").CombinedOutput()
	if err != nil || strings.Count(string(out), "\n") != 5 {
		t.Errorf("restored as the ServiceAccount: %v\n%s", err, out)
	}
	// And it may not delete what it restored.
	if out, err := exec.Command(kubectl, "--kubeconfig", kc, "-n", "rbac-copy", "delete", "configmap", "cfg").CombinedOutput(); err == nil || !strings.Contains(string(out), "forbidden") {
		t.Errorf("the ServiceAccount may delete: %v %s", err, out)
	}
}
