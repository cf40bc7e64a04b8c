// Package drill runs the disaster drill on a real one-node cluster
// (tests/node): cairn installed in the cluster (its agent a DaemonSet pod
// from the cairn image), an nginx-like application serving files from a
// persistent volume, a backup with a pre-hook, the application and its
// volume destroyed, a restore that serves the same files again, then a
// copy restored into another namespace beside the original; and a
// schedule whose first Job backs up from a pod of the cairn image.
package drill

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/cluster"
	"github.com/cairn-backup/cairn/tests/node"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

var (
	clu        *cluster.Cluster
	nd         *node.Node
	cs         *kubernetes.Clientset
	cairnBin   string // static: the same binary as in the image
	cairnImage string
	kubectl    string
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
	dir, err := os.MkdirTemp("", "cairn-drill-")
	if err != nil {
		log.Print(err)
		return 1
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	bin, err := cluster.FindBinaries()
	if err != nil {
		log.Print(err)
		return 1
	}
	kubectl = filepath.Join(bin, "kubectl")
	var stop func()
	clu, nd, stop, err = node.StartWithCluster(ctx, dir, nil)
	if err != nil {
		log.Print(err)
		return 1
	}
	defer stop()
	if cairnImage, err = nd.ImportCairn(ctx); err != nil {
		log.Print(err)
		return 1
	}
	cairnBin = filepath.Join(nd.Dir, "images", "cairn")
	if _, err := nd.ImportFileServer(ctx); err != nil {
		log.Print(err)
		return 1
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", clu.Kubeconfig)
	if err != nil {
		log.Print(err)
		return 1
	}
	cs = kubernetes.NewForConfigOrDie(cfg)
	log.Printf("cluster, node and images ready in %s", time.Since(start).Round(time.Millisecond))
	return m.Run()
}
