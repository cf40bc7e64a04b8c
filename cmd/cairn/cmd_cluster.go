package main

import (
	"github.com/cairn-backup/cairn/k8s/kube"
	"github.com/spf13/cobra"
)

// clusterOptions are the kubectl-style flags every `cairn cluster` command
// shares.
type clusterOptions struct {
	kubeconfig string
	context    string
	qps        float32
	burst      int
}

func (o *clusterOptions) connect() (*kube.Clients, error) {
	return kube.Connect(kube.ClientOptions{Kubeconfig: o.kubeconfig, Context: o.context, QPS: o.qps, Burst: o.burst})
}

// clusterSubcommands are added by the files that implement them (backup,
// restore, …), so each stays independent of the others.
var clusterSubcommands []func(g *globalOptions, co *clusterOptions) *cobra.Command

func newClusterCmd(g *globalOptions) *cobra.Command {
	co := &clusterOptions{}
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Back up and restore Kubernetes resources (and their volumes)",
		Long: `Back up a Kubernetes cluster, or some of its namespaces, into one cairn
snapshot per backup, and restore it into the same or another cluster.

The cluster is reached like kubectl does: --kubeconfig, $KUBECONFIG,
~/.kube/config, --context; inside a pod, its service account.`,
	}
	f := cmd.PersistentFlags()
	f.StringVar(&co.kubeconfig, "kubeconfig", "", "kubeconfig `file` (default $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&co.context, "context", "", "kubeconfig `context` to use (default: the current context)")
	f.Float32Var(&co.qps, "kube-qps", 200, "requests per second to the API server (the server's own fairness limits still apply)")
	f.IntVar(&co.burst, "kube-burst", 400, "request burst to the API server")
	for _, sub := range clusterSubcommands {
		cmd.AddCommand(sub(g, co))
	}
	return cmd
}
