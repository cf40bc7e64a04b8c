// Package kube connects to a Kubernetes cluster and discovers what it
// serves: the clients (kubectl's kubeconfig conventions), the listable
// resources with their preferred versions, and the few rules about objects
// the cluster makes itself that both backup and restore follow. It is the
// lowest package that imports client-go; backup, restore and the volume
// agent build on it.
package kube

import (
	"fmt"
	"os"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ClientOptions follow kubectl's conventions.
type ClientOptions struct {
	Kubeconfig string  // --kubeconfig; "" = $KUBECONFIG or ~/.kube/config, else in-cluster
	Context    string  // --context
	QPS        float32 // client-side rate limit; 0 = 200
	Burst      int     // 0 = 400
}

// Clients bundles what backup and restore talk to.
type Clients struct {
	Config    *rest.Config
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	// Cluster is the name of the kubeconfig context's cluster ("in-cluster"
	// inside a pod); the default --cluster-name.
	Cluster string
}

// Connect loads the configuration and makes the clients.
func Connect(o ClientOptions) (*Clients, error) {
	cfg, cluster, err := loadConfig(o)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	if cfg.QPS == 0 {
		cfg.QPS = 200
	}
	if cfg.Burst == 0 {
		cfg.Burst = 400
	}
	cfg.UserAgent = "cairn"
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes discovery client: %w", err)
	}
	return &Clients{Config: cfg, Dynamic: dyn, Discovery: disc, Cluster: cluster}, nil
}

func loadConfig(o ClientOptions) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.Kubeconfig != "" {
		rules.ExplicitPath = o.Kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.Context}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	raw, rawErr := cc.RawConfig()
	cfg, err := cc.ClientConfig()
	if err == nil {
		ctxName := raw.CurrentContext
		if o.Context != "" {
			ctxName = o.Context
		}
		cluster := ctxName
		if c, ok := raw.Contexts[ctxName]; ok && c.Cluster != "" {
			cluster = c.Cluster
		}
		return cfg, cluster, nil
	}
	// No kubeconfig at all: inside a pod, use the service account.
	if o.Kubeconfig == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		if ic, icErr := rest.InClusterConfig(); icErr == nil {
			return ic, "in-cluster", nil
		}
	}
	if rawErr != nil {
		err = rawErr
	}
	return nil, "", fmt.Errorf("no usable kubeconfig (%v): pass --kubeconfig or set KUBECONFIG", err)
}
