package install

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func s3Options() Options {
	return Options{Image: "example/cairn:1", Repository: &Repository{Location: "s3:https://s3.example.com/b", Password: "pw",
		Env: map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}}}
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s", kind, name)
	return nil
}

func agentContainer(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(find(t, objs, "DaemonSet", AgentName).Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("%d containers", len(cs))
	}
	return cs[0].(map[string]any)
}

func TestObjectsDefaults(t *testing.T) {
	objs, err := Objects(s3Options())
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
		if o.GetLabels()[labelPartOf] != "cairn" && o.GetKind() != "CustomResourceDefinition" {
			t.Errorf("%s lacks the part-of label uninstall goes by", Describe(o))
		}
		namespaced := !slices.Contains([]string{"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}, o.GetKind())
		if namespaced != (o.GetNamespace() == DefaultNamespace) {
			t.Errorf("%s in namespace %q", Describe(o), o.GetNamespace())
		}
	}
	// The namespace first, the CRDs next, the DaemonSet last.
	if kinds[0] != "Namespace" || kinds[1] != "CustomResourceDefinition" || kinds[2] != "CustomResourceDefinition" || kinds[len(kinds)-1] != "DaemonSet" {
		t.Errorf("order %v", kinds)
	}
	if l := objs[0].GetLabels()["pod-security.kubernetes.io/enforce"]; l != "privileged" {
		t.Errorf("namespace's pod security level %q: the agents mount host paths", l)
	}
	sec := find(t, objs, "Secret", SecretName)
	data, _, _ := unstructured.NestedStringMap(sec.Object, "data")
	want := map[string]string{EnvRepository: "czM6aHR0cHM6Ly9zMy5leGFtcGxlLmNvbS9i", EnvPassword: "cHc=", "AWS_ACCESS_KEY_ID": "aWQ=", "AWS_SECRET_ACCESS_KEY": "c2VjcmV0"}
	if len(data) != len(want) {
		t.Errorf("secret data %v", data)
	}
	for k, v := range want {
		if data[k] != v {
			t.Errorf("secret %s = %q, want %q", k, data[k], v)
		}
	}
	c := agentContainer(t, objs)
	args, _, _ := unstructured.NestedStringSlice(c, "args")
	if strings.Join(args, " ") != "cluster agent --node-name=$(NODE_NAME) --kubelet-root=/var/lib/kubelet --cache-dir=/cache" {
		t.Errorf("args %q", args)
	}
	mounts, _, _ := unstructured.NestedSlice(c, "volumeMounts")
	m := mounts[0].(map[string]any)
	if m["mountPath"] != "/var/lib/kubelet/pods" || m["mountPropagation"] != "HostToContainer" || m["readOnly"] != nil {
		t.Errorf("pods mount %v", m)
	}
	if c["image"] != "example/cairn:1" || c["imagePullPolicy"] != nil {
		t.Errorf("image %v, policy %v", c["image"], c["imagePullPolicy"])
	}
	sc := c["securityContext"].(map[string]any)
	if sc["privileged"] != nil || sc["allowPrivilegeEscalation"] != false {
		t.Errorf("security context %v", sc)
	}
	env, _, _ := unstructured.NestedSlice(c, "env")
	if len(env) != 3 || env[0].(map[string]any)["name"] != "NODE_NAME" {
		t.Errorf("env %v", env)
	}
}

func TestObjectsFlags(t *testing.T) {
	o := Options{Namespace: "backup-ns", Image: "reg.local/cairn:dev", ImagePullPolicy: "Never", KubeletRoot: "/data/kubelet/",
		Privileged: true, Repository: &Repository{Location: "/srv/repo", Password: "pw"}, AgentArgs: []string{"--option=s3.region=x"}}
	objs, err := Objects(o)
	if err != nil {
		t.Fatal(err)
	}
	if find(t, objs, "Namespace", "backup-ns") == nil {
		t.Fatal()
	}
	for _, name := range []string{AgentName, BackupRoleName} {
		b := find(t, objs, "RoleBinding", name)
		subj, _, _ := unstructured.NestedSlice(b.Object, "subjects")
		if b.GetNamespace() != "backup-ns" || subj[0].(map[string]any)["namespace"] != "backup-ns" {
			t.Errorf("binding %s: %v", name, b.Object)
		}
	}
	c := agentContainer(t, objs)
	args, _, _ := unstructured.NestedStringSlice(c, "args")
	if !slices.Contains(args, "--kubelet-root=/data/kubelet") || args[len(args)-1] != "--option=s3.region=x" {
		t.Errorf("args %q", args)
	}
	if c["imagePullPolicy"] != "Never" || c["securityContext"].(map[string]any)["privileged"] != true {
		t.Errorf("container %v", c)
	}
	vols, _, _ := unstructured.NestedSlice(find(t, objs, "DaemonSet", AgentName).Object, "spec", "template", "spec", "volumes")
	var paths []string
	for _, v := range vols {
		if p, ok, _ := unstructured.NestedString(v.(map[string]any), "hostPath", "path"); ok {
			paths = append(paths, p)
		}
	}
	if !slices.Equal(paths, []string{"/data/kubelet/pods", "/srv/repo"}) {
		t.Errorf("host paths %v", paths)
	}

	// A Secret the user manages: none made, the DaemonSet reads theirs.
	o = Options{Image: "x", ExistingSecret: "mine"}
	objs, err = Objects(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range objs {
		if u.GetKind() == "Secret" {
			t.Errorf("made %s", Describe(u))
		}
	}
	ef, _, _ := unstructured.NestedSlice(agentContainer(t, objs), "envFrom")
	if n, _, _ := unstructured.NestedString(ef[0].(map[string]any), "secretRef", "name"); n != "mine" {
		t.Errorf("envFrom %v", ef)
	}
}

func TestObjectsRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Options)
	}{
		{"namespace", func(o *Options) { o.Namespace = "Not_A_Name" }},
		{"relative kubelet root", func(o *Options) { o.KubeletRoot = "var/lib/kubelet" }},
		{"root kubelet root", func(o *Options) { o.KubeletRoot = "/" }},
		{"no image", func(o *Options) { o.Image = "" }},
		{"pull policy", func(o *Options) { o.ImagePullPolicy = "Sometimes" }},
		{"relative repo", func(o *Options) { o.Repository.Location = "repo" }},
		{"other backend", func(o *Options) { o.Repository.Location = "sftp:host:/x" }},
		{"no password", func(o *Options) { o.Repository.Password = "" }},
		{"both secrets", func(o *Options) { o.ExistingSecret = "x" }},
		{"no secret", func(o *Options) { o.Repository = nil }},
		{"odd env", func(o *Options) { o.Repository.Env["PATH"] = "/" }},
		{"metrics port", func(o *Options) { o.MetricsPort = 70000 }},
	} {
		o := s3Options()
		tc.mod(&o)
		if _, err := Objects(o); !errors.Is(err, ErrOptions) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestParseCredentials(t *testing.T) {
	ini := "[other]\naws_access_key_id = no\n[default]\naws_access_key_id = AKID\naws_secret_access_key = s3cr3t=x\nregion = eu-1\noutput = json\n"
	got, err := ParseCredentials([]byte(ini), "")
	if err != nil {
		t.Fatal(err)
	}
	if got["AWS_ACCESS_KEY_ID"] != "AKID" || got["AWS_SECRET_ACCESS_KEY"] != "s3cr3t=x" || got["AWS_REGION"] != "eu-1" || len(got) != 3 {
		t.Errorf("ini: %v", got)
	}
	if got, _ := ParseCredentials([]byte(ini), "other"); got != nil {
		t.Errorf("profile without secret accepted: %v", got)
	}
	env := "# minio\nexport AWS_ACCESS_KEY_ID=\"id\"\nAWS_SECRET_ACCESS_KEY='sec'\n"
	got, err = ParseCredentials([]byte(env), "")
	if err != nil || got["AWS_ACCESS_KEY_ID"] != "id" || got["AWS_SECRET_ACCESS_KEY"] != "sec" {
		t.Errorf("env: %v %v", got, err)
	}
	for _, bad := range []string{"[x]\naws_access_key_id=a\naws_secret_access_key=b\n", "garbage\n", "AWS_ACCESS_KEY_ID=a\n"} {
		if _, err := ParseCredentials([]byte(bad), ""); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestRender(t *testing.T) {
	objs, err := Objects(s3Options())
	if err != nil {
		t.Fatal(err)
	}
	y, err := Render(objs, "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(y), "---\n"); n != len(objs) || !strings.HasPrefix(string(y), "---\napiVersion: v1\nkind: Namespace\n") {
		t.Errorf("%d documents for %d objects:\n%.200s", n, len(objs), y)
	}
	j, err := Render(objs, "json")
	if err != nil || !strings.Contains(string(j), `"kind": "List"`) {
		t.Errorf("json: %v %.100s", err, j)
	}
	if _, err := Render(objs, "xml"); !errors.Is(err, ErrOptions) {
		t.Errorf("xml: %v", err)
	}
}
