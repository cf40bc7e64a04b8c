package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/install"
	"github.com/cairn-backup/cairn/repo/s3"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func init() {
	clusterSubcommands = append(clusterSubcommands, newClusterInstallCmd, newClusterUninstallCmd)
}

type installFlags struct {
	dryRun         bool
	output         string
	namespace      string
	image          string
	pullPolicy     string
	kubeletRoot    string
	privileged     bool
	credsFile      string
	credsProfile   string
	existingSecret string
	wait           bool
	metricsPort    int32
	timeout        time.Duration
}

func newClusterInstallCmd(g *globalOptions, co *clusterOptions) *cobra.Command {
	var f installFlags
	cmd := &cobra.Command{
		Use:   "install -r REPO [--password-file F] [--s3-credentials-file F]",
		Short: "Install cairn's node agents, CRDs and RBAC into the cluster",
		Long: `Install (or update) what cairn needs in a cluster to back up and restore
pod volume data: the namespace (--namespace), the VolumeBackup and
VolumeRestore CRDs, RBAC, a Secret cairn-repository with the repository's
location, password and object-store credentials, and the node agent
(cairn cluster agent) as a DaemonSet on every node, with the kubelet's
<kubelet-root>/pods mounted at the same path (HostToContainer propagation).

The namespace is labelled for Pod Security's privileged level (the agents
mount host paths), also when it existed before.

The repository is -r/--repo (or $CAIRN_REPOSITORY): an s3: URL, or an
absolute directory that every node has (it is mounted from the host). The
password comes as for every command (--password-file, $CAIRN_PASSWORD_FILE,
$CAIRN_PASSWORD, a prompt). S3 credentials come from --s3-credentials-file
(an AWS credentials file, or AWS_ACCESS_KEY_ID=… lines), else from
$AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY. -o s3.* options
(s3.region, …) and --insecure-tls are passed on to the agents. With
--existing-secret the agents read a Secret you manage instead (same keys:
CAIRN_REPOSITORY, CAIRN_PASSWORD, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).

RBAC: the agents' ServiceAccount (cairn-agent) may read and update only
their items and read pods and claims. A second ServiceAccount, cairn, is for
running cairn cluster backup and restore inside the cluster: it may read
everything, exec into pods for hooks, and create, update and patch (never
delete) what a restore writes.

Everything is applied server-side (field manager "cairn"): running install
again changes nothing, and changed flags update the objects. It needs
cluster-admin rights. --dry-run -o yaml (or --output json) prints the
objects instead, for kubectl apply or a GitOps repository; the Helm chart in
deploy/chart renders the same.`,
		Example: `  cairn cluster install -r s3:https://s3.example.com/backups --password-file pw --s3-credentials-file creds
  cairn cluster install --dry-run -o yaml -r s3:https://s3.example.com/backups --password-file pw > cairn.yaml`,
		Annotations: map[string]string{outputOptionAnnotation: "true"},
		Args:        exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runClusterInstall(cmd, g, co, &f)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&f.dryRun, "dry-run", false, "change nothing; say what would be applied (with -o yaml|json: print it)")
	fs.StringVar(&f.output, "output", "", "print the objects in this `format` (yaml or json; -o yaml works too)")
	fs.StringVar(&f.namespace, "namespace", install.DefaultNamespace, "the `namespace` of the agents and their items")
	fs.StringVar(&f.image, "image", install.DefaultImage(version), "the cairn `image` the agents run")
	fs.StringVar(&f.pullPolicy, "image-pull-policy", "", "the agents' image pull `policy` (Always, IfNotPresent, Never; default: Kubernetes')")
	fs.StringVar(&f.kubeletRoot, "kubelet-root", install.DefaultKubeletDir, "the kubelet's root `directory` on the nodes (its --root-dir)")
	fs.BoolVar(&f.privileged, "privileged", false, "run the agents privileged (SELinux hosts), not as root with a few capabilities")
	fs.StringVar(&f.credsFile, "s3-credentials-file", "", "read the object store's credentials from `file` (AWS credentials file or AWS_*=… lines)")
	fs.StringVar(&f.credsProfile, "s3-profile", "default", "the `profile` to take from an AWS credentials file")
	fs.StringVar(&f.existingSecret, "existing-secret", "", "let the agents read this `Secret` you manage; make none")
	fs.Int32Var(&f.metricsPort, "metrics-port", 8085, "the `port` the agents serve Prometheus metrics on (/metrics; pods annotated prometheus.io/scrape); 0 = none")
	fs.BoolVar(&f.wait, "wait", false, "wait until the agents run on every node")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long to wait for the CRDs (and with --wait the agents)")
	return cmd
}

// installOptions turns flags and the global repository options into what
// k8s/install builds.
func installOptions(ctx context.Context, cmd *cobra.Command, g *globalOptions, f *installFlags) (install.Options, error) {
	usage := func(format string, args ...any) error {
		return &usageError{cmd: "cairn cluster install", err: fmt.Errorf(format, args...)}
	}
	o := install.Options{
		Namespace: f.namespace, Image: f.image, ImagePullPolicy: f.pullPolicy, KubeletRoot: f.kubeletRoot,
		Privileged: f.privileged, ExistingSecret: f.existingSecret, MetricsPort: f.metricsPort,
	}
	// The agents open the repository as the CLI would with the backend's
	// options (not read-only: they write).
	for _, kv := range g.options {
		if strings.HasPrefix(strings.TrimSpace(kv), "s3.") && strings.Contains(kv, "=") {
			o.AgentArgs = append(o.AgentArgs, "--option="+kv)
		}
	}
	if g.insecureTLS {
		o.AgentArgs = append(o.AgentArgs, "--insecure-tls")
	}
	if g.cacert != "" {
		return o, usage("--cacert is not installed into the cluster: add the CA to the image, or use --insecure-tls for a test")
	}
	if f.existingSecret != "" {
		if cmd.Flags().Changed("repo") || f.credsFile != "" {
			return o, usage("--existing-secret holds the repository and credentials: give no -r or --s3-credentials-file with it")
		}
		return o, nil
	}
	if g.repo == "" {
		return o, usage("no repository: give -r/--repo (or $CAIRN_REPOSITORY), or --existing-secret")
	}
	pw, err := g.password(ctx, false)
	if err != nil {
		return o, err
	}
	r := &install.Repository{Location: g.repo, Password: pw, Env: map[string]string{}}
	o.Repository = r
	switch {
	case f.credsFile != "" && !s3.IsLocation(g.repo):
		return o, usage("--s3-credentials-file is for an s3: repository")
	case f.credsFile != "":
		raw, err := os.ReadFile(f.credsFile)
		if err != nil {
			return o, fmt.Errorf("read S3 credentials: %w", err)
		}
		if r.Env, err = install.ParseCredentials(raw, f.credsProfile); err != nil {
			return o, fmt.Errorf("%s: %w", f.credsFile, err)
		}
	case s3.IsLocation(g.repo):
		for _, k := range install.S3EnvKeys {
			if v := g.env.getenv(k); v != "" {
				r.Env[k] = v
			}
		}
		if r.Env["AWS_ACCESS_KEY_ID"] == "" || r.Env["AWS_SECRET_ACCESS_KEY"] == "" {
			return o, usage("no S3 credentials for the agents: give --s3-credentials-file, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		}
	}
	if !s3.IsLocation(g.repo) && !f.dryRun {
		g.warnf("note: the agents mount the repository directory %s from each node's host: it must exist there (a shared mount)\n", g.repo)
	}
	if r.Env["AWS_REGION"] == "" {
		if v := g.env.getenv("AWS_DEFAULT_REGION"); v != "" && s3.IsLocation(g.repo) {
			r.Env["AWS_REGION"] = v
		}
	}
	return o, nil
}

func outputFormat(g *globalOptions, flag, cmdPath string) (string, error) {
	out := flag
	if g.outputFormat != "" {
		if out != "" && out != g.outputFormat {
			return "", &usageError{cmd: cmdPath, err: fmt.Errorf("-o %s and --output %s disagree", g.outputFormat, out)}
		}
		out = g.outputFormat
	}
	if out != "" && out != "yaml" && out != "json" {
		return "", &usageError{cmd: cmdPath, err: fmt.Errorf("unknown output format %q: use yaml or json", out)}
	}
	return out, nil
}

func runClusterInstall(cmd *cobra.Command, g *globalOptions, co *clusterOptions, f *installFlags) error {
	ctx := cmd.Context()
	format, err := outputFormat(g, f.output, "cairn cluster install")
	if err != nil {
		return err
	}
	o, err := installOptions(ctx, cmd, g, f)
	if err != nil {
		return err
	}
	objs, err := install.Objects(o)
	if err != nil {
		if errors.Is(err, install.ErrOptions) {
			return &usageError{cmd: "cairn cluster install", err: err}
		}
		return err
	}
	if format != "" {
		out, err := install.Render(objs, format)
		if err != nil {
			return err
		}
		g.outf("%s", out)
	}
	if f.dryRun {
		if format == "" {
			for _, u := range objs {
				g.printf("would apply %s\n", install.Describe(u))
			}
		}
		return nil
	}
	cl, err := co.connect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	var applied []string
	err = install.Apply(ctx, cl.Dynamic, o, false, func(u *unstructured.Unstructured) {
		applied = append(applied, install.Describe(u))
		if format == "" {
			g.printf("applied %s\n", install.Describe(u))
		}
	})
	if err != nil {
		return err
	}
	if f.wait {
		if err := install.WaitAgents(ctx, cl.Dynamic, o.Namespace); err != nil {
			return err
		}
		if format == "" {
			g.printf("agents ready\n")
		}
	}
	if g.json && format == "" {
		return g.printJSON(map[string]any{"applied": applied}, false)
	}
	return nil
}

type uninstallFlags struct {
	namespace string
	crds      bool
	wait      bool
	timeout   time.Duration
}

func newClusterUninstallCmd(g *globalOptions, co *clusterOptions) *cobra.Command {
	var f uninstallFlags
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what cairn cluster install made",
		Long: `Remove the node agents, their Secret, RBAC and namespace that
cairn cluster install made. Only objects labelled
app.kubernetes.io/part-of=cairn go (a Secret you gave with --existing-secret
stays), and the namespace only if cairn made it (no other field manager
wrote to it); the VolumeBackup and VolumeRestore items in it go with it.

The CRDs stay unless --crds is given: removing them removes every
VolumeBackup and VolumeRestore in the cluster, and a later install brings
them back. The repository, its backups and their volume data are never
touched.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runClusterUninstall(cmd.Context(), g, co, &f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.namespace, "namespace", install.DefaultNamespace, "the `namespace` cairn was installed into")
	fs.BoolVar(&f.crds, "crds", false, "remove the CRDs too, and with them every VolumeBackup and VolumeRestore")
	fs.BoolVar(&f.wait, "wait", false, "wait until everything deleted is gone (a namespace takes a while)")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long to wait")
	return cmd
}

func runClusterUninstall(ctx context.Context, g *globalOptions, co *clusterOptions, f *uninstallFlags) error {
	cl, err := co.connect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	var deleted []*unstructured.Unstructured
	err = install.Uninstall(ctx, cl.Dynamic, install.UninstallOptions{Namespace: f.namespace, CRDs: f.crds}, func(u *unstructured.Unstructured) {
		deleted = append(deleted, u)
		g.printf("deleted %s\n", install.Describe(u))
	})
	if err != nil {
		return err
	}
	if len(deleted) == 0 {
		g.printf("nothing of cairn's found in namespace %s\n", f.namespace)
	}
	if f.wait {
		if err := install.WaitGone(ctx, cl.Dynamic, deleted); err != nil {
			return err
		}
	}
	if g.json {
		names := make([]string, len(deleted))
		for i, u := range deleted {
			names[i] = install.Describe(u)
		}
		slices.Sort(names)
		return g.printJSON(map[string]any{"deleted": names}, false)
	}
	return nil
}
