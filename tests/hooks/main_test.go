// Package hooks tests backup and restore hooks on a real one-node
// cluster (tests/node): the hooks run through the API server's pods/exec
// in real containers, the node agent runs in the node's namespaces, and
// the cairn binary is the CLI. One control plane and one node serve all
// tests of the package: only one node runs per machine.
package hooks

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/deploy/image"
	"github.com/cairn-backup/cairn/tests/cluster"
	"github.com/cairn-backup/cairn/tests/node"
	"k8s.io/client-go/tools/clientcmd"
)

// cairnImage holds the static cairn binary: the restore-wait helper.
const cairnImage = "cairn.test/cairn:hooks"

var (
	cairnBin       string
	clu            *cluster.Cluster
	nd             *node.Node
	nodeKubeconfig string // the admin's, with the server at the node's relay
)

func TestMain(m *testing.M) {
	if os.Getuid() != 0 {
		fmt.Println("skipped: the node needs root")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "cairn-hooks-")
	if err != nil {
		log.Print(err)
		return 1
	}
	defer os.RemoveAll(dir)
	cairnBin = filepath.Join(dir, "cairn")
	build := exec.Command("go", "build", "-o", cairnBin, "github.com/cairn-backup/cairn/cmd/cairn")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static: it goes into an image too
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		log.Print("build cairn: ", err)
		return 1
	}
	start := time.Now()
	var stop func()
	clu, nd, stop, err = node.StartWithCluster(ctx, dir, nil)
	if err != nil {
		log.Print(err)
		return 1
	}
	defer stop()
	if err := nd.ImportImage(ctx, image.Spec{Ref: cairnImage, Files: []image.File{{Path: "/cairn", Source: cairnBin}},
		Entrypoint: []string{"/cairn"}}); err != nil {
		log.Print(err)
		return 1
	}
	cfg, err := clientcmd.LoadFromFile(clu.Kubeconfig)
	if err != nil {
		log.Print(err)
		return 1
	}
	for _, c := range cfg.Clusters {
		c.Server = fmt.Sprintf("https://%s:%d", node.HostIP, node.APIPort)
	}
	nodeKubeconfig = filepath.Join(dir, "node-admin.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, nodeKubeconfig); err != nil {
		log.Print(err)
		return 1
	}
	log.Printf("cluster and node up in %s", time.Since(start).Round(time.Millisecond))
	return m.Run()
}
