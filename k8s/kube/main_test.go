package kube

import (
	"os"
	"testing"

	"github.com/cairn-backup/cairn/tests/cluster"
)

func TestMain(m *testing.M) {
	os.Exit(cluster.RunShared(m, "k8s/kube"))
}

// needCluster is the package's shared control plane; it skips t when none
// runs.
func needCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	return cluster.NeedShared(t)
}

func TestConnect(t *testing.T) {
	c := needCluster(t)
	cl, err := Connect(ClientOptions{Kubeconfig: c.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	if cl.Cluster != "cairn-test" {
		t.Fatalf("cluster name %q", cl.Cluster)
	}
	v, err := cl.Discovery.ServerVersion()
	if err != nil || v.GitVersion != "v1.37.2" {
		t.Fatalf("server version %v %v", v, err)
	}
	if _, err := Connect(ClientOptions{Kubeconfig: "/nonexistent/kubeconfig"}); err == nil {
		t.Fatal("missing kubeconfig accepted")
	}
}
