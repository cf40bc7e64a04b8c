// Package install builds what `cairn cluster install` puts into a cluster
// (namespace, CRDs, RBAC, the repository Secret, the node agent's
// DaemonSet), applies it server-side and takes it out again. The Helm chart
// in deploy/chart renders the same objects; a test keeps them in step.
package install

import (
	"encoding/base64"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/deploy"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ImageRepository is where cairn's release images are published (one
// constant, deploy.ImageRepository, which make image tags too); the agent
// and the restore helper default to the image of the running version, so
// CLI and cluster speak the same API.
const ImageRepository = deploy.ImageRepository

// DefaultImage is the image of cairn at version.
func DefaultImage(version string) string { return ImageRepository + ":" + version }

// Object names. Cluster-scoped objects have fixed names: one install per
// cluster (the CRDs are cluster-wide anyway).
const (
	DefaultNamespace  = "cairn-system"
	AgentName         = "cairn-agent"   // ServiceAccount, Role(Binding), ClusterRole(Binding), DaemonSet
	ServerName        = "cairn"         // ServiceAccount for backups and restores run inside the cluster
	BackupRoleName    = "cairn-backup"  // ClusterRole + Role (VolumeBackups)
	RestoreRoleName   = "cairn-restore" // ClusterRole
	SecretName        = "cairn-repository"
	DefaultKubeletDir = "/var/lib/kubelet"
	cacheDir          = "/cache"
	labelPartOf       = "app.kubernetes.io/part-of"
	labelName         = "app.kubernetes.io/name"
)

// Secret keys: the environment variables cairn reads, so the agent gets
// them with envFrom and opens the repository as the CLI would.
const (
	EnvRepository = "CAIRN_REPOSITORY"
	EnvPassword   = "CAIRN_PASSWORD"
)

// S3EnvKeys are the object-store variables a Secret may hold (repo/s3
// reads them through Config.ApplyEnv).
var S3EnvKeys = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"}

// Options are what the user chose; zero values take the defaults.
type Options struct {
	Namespace string
	Image     string // required
	// ImagePullPolicy is empty for Kubernetes' default.
	ImagePullPolicy string
	// KubeletRoot is the kubelet's root directory on the nodes; its pods/
	// is mounted into the agent at the same path.
	KubeletRoot string
	// Privileged runs the agent privileged instead of with the few
	// capabilities it needs (for SELinux hosts, whose labels keep even root
	// out of other pods' volumes).
	Privileged bool
	// Repository makes the Secret; nil uses ExistingSecret.
	Repository *Repository
	// ExistingSecret names a Secret the user manages (same keys).
	ExistingSecret string
	// AgentArgs are appended to the agent's command line (e.g. the
	// --option s3.region=… the CLI was given).
	AgentArgs []string
	// MetricsPort is where the agents serve Prometheus metrics (the
	// container port named metrics, announced by prometheus.io/*
	// annotations on the pods); 0 serves none.
	MetricsPort int32
}

// Repository is where the agents store volume data.
type Repository struct {
	Location string
	Password string
	// Env holds object-store credentials by S3EnvKeys name.
	Env map[string]string
}

// ErrOptions marks options that cannot be installed.
var ErrOptions = errors.New("invalid install options")

func (o *Options) defaults() error {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.KubeletRoot == "" {
		o.KubeletRoot = DefaultKubeletDir
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return fmt.Errorf("%w: namespace %q: %s", ErrOptions, o.Namespace, strings.Join(errs, "; "))
	}
	if !path.IsAbs(o.KubeletRoot) || path.Clean(o.KubeletRoot) == "/" {
		return fmt.Errorf("%w: kubelet root %q: give the kubelet's absolute --root-dir (default %s)", ErrOptions, o.KubeletRoot, DefaultKubeletDir)
	}
	o.KubeletRoot = path.Clean(o.KubeletRoot)
	if o.Image == "" {
		return fmt.Errorf("%w: no image", ErrOptions)
	}
	if o.MetricsPort < 0 || o.MetricsPort > 65535 {
		return fmt.Errorf("%w: metrics port %d: give 1-65535, or 0 for no metrics", ErrOptions, o.MetricsPort)
	}
	switch o.ImagePullPolicy {
	case "", "Always", "IfNotPresent", "Never":
	default:
		return fmt.Errorf("%w: image pull policy %q: use Always, IfNotPresent or Never", ErrOptions, o.ImagePullPolicy)
	}
	if (o.Repository == nil) == (o.ExistingSecret == "") {
		return fmt.Errorf("%w: give either a repository or an existing Secret", ErrOptions)
	}
	if r := o.Repository; r != nil {
		if r.Location == "" || r.Password == "" {
			return fmt.Errorf("%w: the repository needs a location and a password", ErrOptions)
		}
		if !strings.HasPrefix(r.Location, "s3:") && !isLocalPath(r.Location) {
			return fmt.Errorf("%w: repository %q: give an s3: URL or an absolute directory present on every node", ErrOptions, r.Location)
		}
		for k := range r.Env {
			if !slices.Contains(S3EnvKeys, k) {
				return fmt.Errorf("%w: unknown credential variable %s", ErrOptions, k)
			}
		}
	}
	return nil
}

// Objects returns what an install applies, in apply order: namespace,
// CRDs, RBAC, Secret, DaemonSet.
func Objects(o Options) ([]*unstructured.Unstructured, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	crds, err := volapi.CRDs()
	if err != nil {
		return nil, err
	}
	ns := obj("v1", "Namespace", "", o.Namespace, nil)
	// The agents mount host paths, which Pod Security's baseline level
	// refuses; a cluster whose default is baseline or restricted would
	// otherwise keep them from starting.
	ns.SetLabels(map[string]string{labelPartOf: "cairn", "pod-security.kubernetes.io/enforce": "privileged"})
	out := []*unstructured.Unstructured{ns}
	for _, c := range crds {
		out = append(out, c.Obj.DeepCopy())
	}
	out = append(out, rbac(o.Namespace)...)
	secret := o.ExistingSecret
	if o.Repository != nil {
		secret = SecretName
		out = append(out, secretObj(o))
	}
	out = append(out, daemonSet(o, secret))
	return out, nil
}

// obj is an object with cairn's label; body holds the fields beside
// apiVersion, kind and metadata.
func obj(apiVersion, kind, namespace, name string, body map[string]any) *unstructured.Unstructured {
	meta := map[string]any{"name": name, "labels": map[string]any{labelPartOf: "cairn"}}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	u := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta}
	for k, v := range body {
		u[k] = v
	}
	return &unstructured.Unstructured{Object: u}
}

func secretObj(o Options) *unstructured.Unstructured {
	r := o.Repository
	data := map[string]any{
		EnvRepository: base64.StdEncoding.EncodeToString([]byte(r.Location)),
		EnvPassword:   base64.StdEncoding.EncodeToString([]byte(r.Password)),
	}
	for k, v := range r.Env {
		if v != "" {
			data[k] = base64.StdEncoding.EncodeToString([]byte(v))
		}
	}
	return obj("v1", "Secret", o.Namespace, SecretName, map[string]any{"type": "Opaque", "data": data})
}

// daemonSet runs one agent per node. Not privileged by default: root with
// the capabilities to read and write every file of every volume (DAC_*),
// to restore owners and modes (CHOWN, FOWNER, FSETID), device nodes
// (MKNOD) and file capabilities (SETFCAP); everything else dropped.
// HostToContainer propagation shows the agent the volumes the kubelet
// mounts after it started, and needs no privilege (Bidirectional would).
func daemonSet(o Options, secret string) *unstructured.Unstructured {
	pods := o.KubeletRoot + "/pods"
	args := []any{"cluster", "agent", "--node-name=$(NODE_NAME)", "--kubelet-root=" + o.KubeletRoot, "--cache-dir=" + cacheDir}
	if o.MetricsPort > 0 {
		args = append(args, fmt.Sprintf("--metrics-address=:%d", o.MetricsPort))
	}
	for _, a := range o.AgentArgs {
		args = append(args, a)
	}
	sc := map[string]any{"runAsUser": int64(0), "readOnlyRootFilesystem": true}
	if o.Privileged {
		sc["privileged"] = true
	} else {
		sc["allowPrivilegeEscalation"] = false
		sc["capabilities"] = map[string]any{
			"drop": []any{"ALL"},
			"add":  []any{"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "MKNOD", "SETFCAP"},
		}
	}
	fieldEnv := func(name, path string) any {
		return map[string]any{"name": name, "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": path}}}
	}
	container := map[string]any{
		"name":  "agent",
		"image": o.Image,
		"args":  args,
		"env": []any{
			fieldEnv("NODE_NAME", "spec.nodeName"),
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NAMESPACE", "metadata.namespace"),
		},
		"envFrom":         []any{map[string]any{"secretRef": map[string]any{"name": secret}}},
		"securityContext": sc,
		"volumeMounts": []any{
			map[string]any{"name": "pods", "mountPath": pods, "mountPropagation": "HostToContainer"},
			map[string]any{"name": "cache", "mountPath": cacheDir},
			// The root file system is read-only; packs being written
			// wait in temporary files.
			map[string]any{"name": "tmp", "mountPath": "/tmp"},
		},
	}
	if o.ImagePullPolicy != "" {
		container["imagePullPolicy"] = o.ImagePullPolicy
	}
	podMeta := map[string]any{"labels": map[string]any{labelName: AgentName, labelPartOf: "cairn"}}
	if o.MetricsPort > 0 {
		container["ports"] = []any{map[string]any{"name": "metrics", "containerPort": int64(o.MetricsPort), "protocol": "TCP"}}
		podMeta["annotations"] = map[string]any{
			"prometheus.io/scrape": "true", "prometheus.io/port": fmt.Sprint(o.MetricsPort), "prometheus.io/path": "/metrics",
		}
	}
	volumes := []any{
		map[string]any{"name": "pods", "hostPath": map[string]any{"path": pods, "type": "Directory"}},
		map[string]any{"name": "cache", "emptyDir": map[string]any{}},
		map[string]any{"name": "tmp", "emptyDir": map[string]any{}},
	}
	// A repository in a local directory is the same directory of each
	// node (a shared mount), at the same path.
	if r := o.Repository; r != nil && isLocalPath(r.Location) {
		dir := strings.TrimPrefix(r.Location, "local:")
		volumes = append(volumes, map[string]any{"name": "repository", "hostPath": map[string]any{"path": dir, "type": "Directory"}})
		container["volumeMounts"] = append(container["volumeMounts"].([]any), map[string]any{"name": "repository", "mountPath": dir})
	}
	labels := map[string]any{labelName: AgentName}
	ds := obj("apps/v1", "DaemonSet", o.Namespace, AgentName, map[string]any{"spec": map[string]any{
		"selector": map[string]any{"matchLabels": labels},
		"template": map[string]any{
			"metadata": podMeta,
			"spec": map[string]any{
				"serviceAccountName": AgentName,
				// SIGTERM makes the agent release its items, which the
				// next agent retries at once.
				"terminationGracePeriodSeconds": int64(60),
				// Every node, control-plane nodes too: volumes are wherever
				// pods are.
				"tolerations": []any{map[string]any{"operator": "Exists"}},
				"containers":  []any{container},
				"volumes":     volumes,
			},
		},
	}})
	l := ds.GetLabels()
	l[labelName] = AgentName
	ds.SetLabels(l)
	return ds
}

// isLocalPath says whether a repository location is a directory (cairn's
// rule: an absolute path or local:PATH; everything with a scheme is remote).
func isLocalPath(loc string) bool {
	return strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "local:/")
}
