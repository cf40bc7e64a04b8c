// Command cluster starts or stops a local Kubernetes control plane for
// humans: `make cluster-up` / `make cluster-down`.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cairn-backup/cairn/tests/cluster"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: cluster up|down DIR")
		os.Exit(2)
	}
	dir := os.Args[2]
	if os.Args[1] == "down" {
		if err := cluster.StopDetached(dir); err != nil {
			fmt.Fprintln(os.Stderr, "cluster:", err)
			os.Exit(1)
		}
		fmt.Println("cluster stopped")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{Dir: dir, Detach: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
	fmt.Printf("cluster up at %s\nexport KUBECONFIG=%s\n", c.Server, c.Kubeconfig)
}
