package kube

import (
	"testing"

	"github.com/cairn-backup/cairn/tests/cluster"
)

func TestConnect(t *testing.T) {
	c := cluster.NeedShared(t)
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
