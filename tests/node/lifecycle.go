package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/tests/cluster"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// waitReady waits until the node is registered and Ready.
func (n *Node) waitReady(ctx context.Context, c *cluster.Cluster) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	last := "not registered"
	for {
		for _, p := range n.procs {
			if p.ProcessState != nil {
				return fmt.Errorf("%s exited; its last errors:\n%s", strings.Join(p.Args, " "), n.logErrors(filepath.Base(p.Args[len(p.Args)-1])))
			}
		}
		if node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{}); err == nil {
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					if cond.Status == corev1.ConditionTrue {
						return nil
					}
					last = cond.Reason + ": " + cond.Message
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("node %s not Ready after 2 min (%s); kubelet's last errors:\n%s", n.Name, last, n.logErrors("kubelet"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Stop ends the node and removes everything it made on the host: its
// processes and their containers, cgroups, network namespace and veth.
// The mounts go with the mount namespace.
func (n *Node) Stop() {
	if n.relay != nil {
		n.relay.Close()
	}
	// The kubelet first, so that it restarts nothing; then every
	// container and shim; then the rest.
	for i := len(n.procs) - 1; i >= 0; i-- {
		if strings.Contains(strings.Join(n.procs[i].Args, " "), "kubelet") {
			stopProc(n.procs[i].Process.Pid)
		}
	}
	killContainers(n.Socket)
	for i := len(n.procs) - 1; i >= 0; i-- {
		stopProc(n.procs[i].Process.Pid)
	}
	n.procs = nil
	removeHostState()
	if n.lock != nil {
		n.lock.Close() // releases the flock
		n.lock = nil
	}
}

// lockMachine waits for the machine-wide node lock (up to 15 min).
func lockMachine(ctx context.Context, log func(string, ...any)) (*os.File, error) {
	f, err := os.OpenFile("/run/lock/cairn-node.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("node lock: %w", err)
	}
	deadline := time.Now().Add(15 * time.Minute)
	for said := false; ; {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return f, nil
		}
		if !said {
			log("node: waiting for another test's node to stop")
			said = true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.Close()
			return nil, errors.New("another node has run on this machine for 15 min (make node-down stops one started by hand)")
		}
		time.Sleep(time.Second)
	}
}

// stopProc sends SIGTERM and, after 10 s, SIGKILL; it returns when the
// process is gone.
func stopProc(pid int) {
	if syscall.Kill(pid, syscall.SIGTERM) != nil {
		return
	}
	for i := 0; i < 100; i++ {
		if !alive(pid) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 50 && alive(pid); i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

// alive reports a process that exists and is not a zombie.
func alive(pid int) bool {
	buf, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(buf, ')')
	return i < 0 || i+2 >= len(buf) || buf[i+2] != 'Z'
}

// killContainers kills the shims of the containerd at socket and every
// process in the node's cgroups.
func killContainers(socket string) {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		args := strings.Split(string(cmd), "\x00")
		if len(args) > 0 && strings.HasSuffix(args[0], "containerd-shim-runc-v2") && (socket == "" || slices.Contains(args, socket)) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for range 3 {
		filepath.WalkDir(filepath.Join("/sys/fs/cgroup/pids", cgroupRoot), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			buf, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(buf)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
		time.Sleep(200 * time.Millisecond)
	}
}

// removeHostState removes the node's cgroups, network namespace and veth.
func removeHostState() {
	for _, ctl := range cgroupControllers() {
		root := filepath.Join("/sys/fs/cgroup", ctl, cgroupRoot)
		var dirs []string
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- { // children first
			for j := 0; j < 20 && os.Remove(dirs[i]) != nil && !errors.Is(os.Remove(dirs[i]), fs.ErrNotExist); j++ {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	exec.Command("ip", "netns", "del", NetNS).Run()
	exec.Command("ip", "link", "del", hostVeth).Run()
}

// writePids records the processes of a detached node for StopDetached.
func (n *Node) writePids() {
	var pids []string
	for _, p := range n.procs {
		pids = append(pids, strconv.Itoa(p.Process.Pid))
	}
	os.WriteFile(filepath.Join(n.Dir, "pids"), []byte(strings.Join(pids, "\n")+"\n"), 0o644)
	os.WriteFile(filepath.Join(n.Dir, "socket"), []byte(n.Socket), 0o644)
	os.WriteFile(detachedMarker, []byte(n.Dir), 0o644)
	n.procs = nil
}

// StopDetached ends a node started with Detach, from its pid file, and
// cleans up as Stop does.
func StopDetached(dir string) error {
	buf, err := os.ReadFile(filepath.Join(dir, "pids"))
	if err != nil {
		return fmt.Errorf("no running node in %s: %w", dir, err)
	}
	socket, _ := os.ReadFile(filepath.Join(dir, "socket"))
	pids := strings.Fields(string(buf))
	for _, f := range pids { // the kubelet first
		if pid, err := strconv.Atoi(f); err == nil {
			if cmd, _ := os.ReadFile("/proc/" + f + "/cmdline"); bytes.Contains(cmd, []byte("kubelet")) {
				stopProc(pid)
			}
		}
	}
	killContainers(string(socket))
	for i := len(pids) - 1; i >= 0; i-- {
		if pid, err := strconv.Atoi(pids[i]); err == nil {
			stopProc(pid)
		}
	}
	removeHostState()
	os.Remove(detachedMarker)
	return os.Remove(filepath.Join(dir, "pids"))
}

// StopLeftovers cleans up after a node whose test was killed: its
// processes died with it (Pdeathsig), but shims, containers, cgroups and
// the network namespace may remain.
// A node started by hand (make node-up) is not a leftover: it says so in
// detachedMarker, and StopLeftovers refuses to touch it.
func StopLeftovers() error {
	if dir, err := os.ReadFile(detachedMarker); err == nil {
		if _, err := os.Stat(filepath.Join(string(dir), "pids")); err == nil {
			return fmt.Errorf("a node started by make node-up runs (in %s): make node-down first", dir)
		}
	}
	if _, err := os.Stat("/run/netns/" + NetNS); err != nil {
		cgroups := false
		for _, ctl := range cgroupControllers() {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ctl, cgroupRoot)); err == nil {
				cgroups = true
			}
		}
		if !cgroups {
			return nil
		}
	}
	killContainers("")
	removeHostState()
	return nil
}

const detachedMarker = "/run/lock/cairn-node.detached"

// logErrors returns the last error lines of a process's log (klog's "E"
// lines, or the last lines when there are none).
func (n *Node) logErrors(name string) string {
	buf, _ := os.ReadFile(filepath.Join(n.Dir, "logs", name+".log"))
	lines := strings.Split(strings.TrimSpace(string(buf)), "\n")
	var errs []string
	for _, l := range lines {
		if (strings.HasPrefix(l, "E") && !strings.Contains(l, "node is not registered yet")) || strings.Contains(l, "level=error") || strings.Contains(l, "level=fatal") {
			errs = append(errs, l)
		}
	}
	if len(errs) == 0 {
		errs = lines
	}
	return strings.Join(errs[max(0, len(errs)-12):], "\n")
}

// Leftovers lists what a node that ran in dir left on the host after it
// stopped: processes, mounts, cgroups, network namespaces, the veth.
// Empty means clean.
func Leftovers(dir string) []string {
	var left []string
	if _, err := os.Stat("/run/netns/" + NetNS); err == nil {
		left = append(left, "network namespace "+NetNS)
	}
	if ents, _ := filepath.Glob("/run/netns/cni-*"); len(ents) > 0 {
		left = append(left, fmt.Sprintf("pod network namespaces %v", ents))
	}
	for _, ctl := range cgroupControllers() {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ctl, cgroupRoot)); err == nil {
			left = append(left, "cgroup "+ctl+"/"+cgroupRoot)
		}
	}
	if out, _ := exec.Command("pgrep", "-f", dir).Output(); len(out) > 0 {
		left = append(left, "processes "+strings.Join(strings.Fields(string(out)), ","))
	}
	if exec.Command("ip", "link", "show", hostVeth).Run() == nil {
		left = append(left, "link "+hostVeth)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), dir) {
		left = append(left, "mounts under "+dir)
	}
	return left
}
