package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/cairn-backup/cairn/k8s/agent"
	"github.com/cairn-backup/cairn/k8s/metrics"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/spf13/cobra"
)

func init() { clusterSubcommands = append(clusterSubcommands, newClusterAgentCmd) }

// defaultAgentNamespace is where the volume items live unless
// --agent-namespace (or, for the agent, $POD_NAMESPACE) says otherwise.
const defaultAgentNamespace = "cairn-system"

type agentFlags struct {
	node         string
	kubeletRoot  string
	namespace    string
	concurrent   int
	heartbeat    time.Duration
	maxAttempts  int32
	mountWait    time.Duration
	metricsAddr  string
	metricsEvery time.Duration
}

func newClusterAgentCmd(g *globalOptions, co *clusterOptions) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent --node-name NODE",
		Short: "Run the node agent that backs up and restores pod volume data (as a DaemonSet)",
		Long: `Run the node agent: it watches the VolumeBackup items of its node
(labelled cairn.io/node=NODE, created by cairn cluster backup), finds each
volume's directory under the kubelet root (<root>/pods/<uid>/volumes/…),
backs it up into the repository under a shared lock, as a snapshot of its
own tagged volume-of=<backup> (the previous backup of the same claim, else
of the same namespace, workload and volume name, is its parent, so
unchanged files are not read again), and reports phase, tree and counts in
the item's status. cairn cluster backup then takes the trees into the
backup's snapshot.

It restores too: cairn cluster restore creates a VolumeRestore for each
volume of a restored pod, without a node. The agent of the node the pod is
scheduled on (it watches the pods with spec.nodeName=NODE) takes the item,
waits up to --mount-wait for the kubelet to make the volume's directory,
checks that the item's tree is the one its backup holds at
/volumes/<ns>/<pod>/<volume> and that the pod is the one the restore
created, restores the files (modes, owners, times, xattrs) into the
directory and then writes the done marker the pod's init container
(cairn cluster restore-wait) waits for.

Meant to run as a DaemonSet with <kubelet-root>/pods mounted (read-only is
enough for backups, writable for restores) and NODE from the downward API (spec.nodeName). While
it copies a volume it renews a heartbeat on the item; an item whose
heartbeat went stale (an agent that died) is retried by the node's next
agent, and failed after --max-attempts. On SIGTERM the agent stops its
copies and releases their items, which the next agent retries at once.

With --metrics-address it serves Prometheus metrics at /metrics: the
volume backups and restores it finished by result, bytes, durations, and,
refreshed every --metrics-refresh from the repository's snapshot list,
the backups by phase, the last Completed backup per schedule and the
repository's size (README "Metrics").`,
		Example: `  cairn cluster agent --node-name "$NODE_NAME" -r s3:https://s3.example.com/backups --cache-dir /cache`,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runClusterAgent(cmd, g, co, &f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.node, "node-name", "", "the `node` this agent runs on (default $NODE_NAME)")
	fs.StringVar(&f.kubeletRoot, "kubelet-root", "/var/lib/kubelet", "the kubelet's root `directory` as mounted into the agent")
	fs.StringVar(&f.namespace, "agent-namespace", "", "the `namespace` of the volume items (default $POD_NAMESPACE, else "+defaultAgentNamespace+")")
	fs.IntVar(&f.concurrent, "concurrent-volumes", 3, "copy up to `n` volumes at once")
	fs.DurationVar(&f.heartbeat, "heartbeat", 10*time.Second, fmt.Sprintf("renew a running item's heartbeat this often; an item is retried after %d missed beats", agent.StaleAfter))
	fs.Int32Var(&f.maxAttempts, "max-attempts", 3, "fail an item after this many attempts ended with the agent stopping")
	fs.DurationVar(&f.mountWait, "mount-wait", 10*time.Minute, "fail a restore whose volume directory the kubelet has not made after this long")
	fs.StringVar(&f.metricsAddr, "metrics-address", "", "serve Prometheus metrics at http://`addr`/metrics (e.g. :8085; default off)")
	fs.DurationVar(&f.metricsEvery, "metrics-refresh", 5*time.Minute, "re-read the repository's backups and size for the metrics this often")
	return cmd
}

func runClusterAgent(cmd *cobra.Command, g *globalOptions, co *clusterOptions, f *agentFlags) error {
	ctx := cmd.Context()
	if f.node == "" {
		f.node = g.env.getenv("NODE_NAME")
	}
	if f.node == "" {
		return &usageError{cmd: "cairn cluster agent", err: errors.New("no node name: give --node-name (from the downward API's spec.nodeName) or set $NODE_NAME")}
	}
	if f.namespace == "" {
		f.namespace = g.env.getenv("POD_NAMESPACE")
	}
	if f.namespace == "" {
		f.namespace = defaultAgentNamespace
	}
	if f.metricsAddr != "" && f.metricsEvery < time.Second {
		return &usageError{cmd: "cairn cluster agent", err: errors.New("--metrics-refresh must be at least 1s")}
	}
	if f.concurrent < 1 || f.heartbeat < 100*time.Millisecond || f.maxAttempts < 1 || f.mountWait <= 0 {
		return &usageError{cmd: "cairn cluster agent", err: errors.New("--concurrent-volumes and --max-attempts must be at least 1, --heartbeat at least 100ms, --mount-wait positive")}
	}
	if fi, err := os.Stat(f.kubeletRoot); err != nil || !fi.IsDir() {
		return fmt.Errorf("kubelet root %s is not a directory: mount the node's kubelet directory into the agent and give it as --kubelet-root", f.kubeletRoot)
	}
	if err := g.declareWrite("cluster agent", appendLock); err != nil {
		return err
	}
	cl, err := co.connect()
	if err != nil {
		return err
	}
	// Each volume's backup takes its own shared lock, so that a prune can
	// run between backups; the agent itself holds none while idle.
	r, err := g.openRepo(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.LoadIndex(ctx); err != nil {
		return err
	}
	pod := g.env.getenv("POD_NAME")
	if pod == "" {
		pod, _ = os.Hostname()
	}
	logf := func(format string, args ...any) {
		g.printf("%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
	}
	var m *metrics.Agent
	if f.metricsAddr != "" {
		ln, err := net.Listen("tcp", f.metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics: %w; give a free --metrics-address (or none to serve no metrics)", err)
		}
		m = metrics.NewAgent()
		mctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			if err := m.Serve(mctx, ln); err != nil {
				logf("%v", err)
			}
		}()
		go (&metrics.Refresher{M: m, Repo: r}).Run(mctx, f.metricsEvery, logf)
		logf("serving Prometheus metrics at http://%s/metrics; repository gauges refreshed every %s", ln.Addr(), f.metricsEvery)
	}
	ag, err := agent.New(agent.Config{
		Dyn: cl.Dynamic, Namespace: f.namespace, Node: f.node, KubeletRoot: f.kubeletRoot,
		Repo: r, Concurrent: f.concurrent, Heartbeat: f.heartbeat, MaxAttempts: f.maxAttempts, MountWait: f.mountWait,
		ID: volapi.AgentID(f.node, pod, time.Now()), Version: version,
		Lock: func(lctx context.Context) (func(), error) { return g.lock(lctx, r, false) },
		Logf: logf, Metrics: m,
	})
	if err != nil {
		return err
	}
	return ag.Run(ctx)
}
