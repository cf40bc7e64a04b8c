// Command node brings up a one-node Kubernetes cluster for trying cairn by
// hand (make node-up / make node-down): the control plane of tests/cluster
// on 127.0.0.1 and the node of tests/node (kubelet, containerd, runc) in
// its network namespace, as detached processes.
//
//	node up DIR      start both, import the images, make local PVs
//	node down DIR    stop both and remove what the node made on the host
//	node relay L T   forward L to T (the node's API relay; started by up)
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/tests/cluster"
	"github.com/cairn-backup/cairn/tests/node"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// localVolumes is how many local PVs up makes: enough for an application,
// its restore and a restore into another namespace.
const localVolumes = 6

func main() {
	var err error
	switch {
	case len(os.Args) == 3 && os.Args[1] == "up":
		err = up(os.Args[2])
	case len(os.Args) == 3 && os.Args[1] == "down":
		err = down(os.Args[2])
	case len(os.Args) == 4 && os.Args[1] == "relay":
		err = relay(os.Args[2], os.Args[3])
	default:
		fmt.Fprintln(os.Stderr, "usage: node up DIR | node down DIR | node relay LISTEN TARGET")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		os.Exit(1)
	}
}

func up(dir string) (err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "cluster", "pids")); err == nil {
		return fmt.Errorf("a cluster already runs in %s: make node-down first", dir)
	}
	if err := removeState(dir); err != nil { // of an up that failed
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	say := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	say("control plane in %s/cluster", dir)
	c, err := cluster.Start(ctx, cluster.Options{Dir: filepath.Join(dir, "cluster"), Detach: true,
		ExtraSANs: []string{node.HostIP}, Scheduler: true})
	if err != nil {
		return err
	}
	var n *node.Node
	defer func() {
		if err != nil { // leave nothing half up
			if n != nil {
				node.StopDetached(n.Dir)
			}
			cluster.StopDetached(c.Dir)
		}
	}()
	n, err = node.Start(ctx, node.Options{Cluster: c, Dir: filepath.Join(dir, "node"), Detach: true,
		RelayCommand: []string{self, "relay"}, Log: say})
	if err != nil {
		n = nil // Start cleaned up after itself
		return err
	}
	say("node: file server and cairn images (a first build of cairn takes minutes)")
	fileserver, err := n.ImportFileServer(ctx)
	if err != nil {
		return err
	}
	cairn, err := n.ImportCairn(ctx)
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if _, err := n.LocalVolumes(ctx, cs, localVolumes, "1Gi"); err != nil {
		return err
	}
	fmt.Printf(`Node %s is Ready; the API server is %s.

  export KUBECONFIG=%s

Images (use imagePullPolicy: Never; nothing can be pulled):
  %s   sh and the usual tools
  %s   serves -root %s on :%d
  %s   cairn (make image builds the same)
Storage: class %s (the default), %d local PVs of 1Gi under %s/node/volumes.
Pods' IPs (%s) are reachable from this host. Logs: %s/node/logs.
Stop with: make node-down
`, n.Name, c.Server, c.Kubeconfig, node.BusyboxImage, fileserver, node.FileServerRoot, node.FileServerPort,
		cairn, node.LocalStorageClass, localVolumes, dir, node.PodCIDR, dir)
	return nil
}

func down(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	var errs []error
	if err := node.StopDetached(filepath.Join(dir, "node")); err != nil {
		errs = append(errs, err)
	}
	if err := cluster.StopDetached(filepath.Join(dir, "cluster")); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 2 {
		return fmt.Errorf("nothing runs in %s (%v)", dir, errors.Join(errs...))
	}
	if left := node.Leftovers(filepath.Join(dir, "node")); len(left) > 0 {
		return fmt.Errorf("stopped, but left behind: %s", strings.Join(left, "; "))
	}
	if err := removeState(dir); err != nil {
		return err
	}
	fmt.Println("node and control plane stopped")
	return errors.Join(errs...)
}

// removeState removes what up wrote into dir (only its own two
// directories), unless something is still mounted there.
func removeState(dir string) error {
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), dir+"/") {
		return fmt.Errorf("something is mounted under %s: unmount it first", dir)
	}
	for _, sub := range []string{"node", "cluster"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return fmt.Errorf("remove the old state: %w", err)
		}
	}
	os.Remove(dir) // if empty
	return nil
}

func relay(listen, target string) error {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	node.Relay(l, target)
	return nil
}
