// Package node runs a one-node Kubernetes cluster's node half for tests:
// containerd, runc and a real kubelet, joined to a control plane that
// tests/cluster started. The node lives in its own network namespace,
// joined to the host by a veth pair and with no route off the machine,
// and in its own mount namespace, so that the kubelet's and containers'
// mounts (and its writes to kernel tunables) never reach the host and
// vanish with it.
package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-backup/cairn/tests/cluster"
)

// Addresses of the node. One node runs per machine at a time: a second
// Start fails until the first is stopped (or StopLeftovers cleans up
// after a killed one).
const (
	NetNS    = "cairn-node"
	hostVeth = "cairn-veth0"
	nodeVeth = "cairn-veth1"
	HostIP   = "10.213.0.1" // the host's end of the veth: the API server relay
	NodeIP   = "10.213.0.2" // the node's address (kubelet, hostNetwork pods)
	PodCIDR  = "10.214.0.0/24"
	// APIPort is where the relay on HostIP forwards to the API server.
	APIPort = 6443
	// cgroupRoot holds the node's pods in every cgroup v1 hierarchy, so
	// that cleaning up touches no one else's cgroups.
	cgroupRoot = "cairn-node"
)

// Options for Start.
type Options struct {
	Cluster *cluster.Cluster // started with ExtraSANs including HostIP and Scheduler
	Dir     string           // working directory (created); required
	Name    string           // node name; "" = "cairn-node"
	BinDir  string           // where kubelet is; "" = cluster.FindBinaries
	// Detach starts the processes in their own sessions so that they
	// outlive the caller (make node-up); RelayCommand then runs the API
	// relay as a process (argv, to which "LISTEN TARGET" is appended).
	Detach       bool
	RelayCommand []string
	Log          func(format string, args ...any) // progress; nil = quiet
}

// Node is a running node.
type Node struct {
	Name    string
	Dir     string
	RootDir string // the kubelet's root: pods are under RootDir/pods
	Socket  string // containerd's socket
	holder  int    // pid of the process that holds the mount namespace
	procs   []*exec.Cmd
	relay   net.Listener
	lock    *os.File
	log     func(string, ...any)
}

// Start brings the node up and waits until it is Ready.
func Start(ctx context.Context, opts Options) (n *Node, err error) {
	if opts.Name == "" {
		opts.Name = "cairn-node"
	}
	if opts.BinDir == "" {
		if opts.BinDir, err = cluster.FindBinaries(); err != nil {
			return nil, err
		}
	}
	if err := checkTools(opts.BinDir); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	n = &Node{Name: opts.Name, Dir: dir, RootDir: filepath.Join(dir, "kubelet"),
		Socket: filepath.Join(dir, "containerd", "containerd.sock"), log: opts.Log}
	if n.log == nil {
		n.log = func(string, ...any) {}
	}
	// One node per machine: test packages that run in parallel take
	// turns. A node of a killed process left no lock, only leftovers.
	if n.lock, err = lockMachine(ctx, n.log); err != nil {
		return nil, err
	}
	if err := StopLeftovers(); err != nil {
		n.lock.Close()
		return nil, err
	}
	started := n
	defer func() {
		if err != nil {
			started.Stop()
		}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	n.log("node: network namespace %s (%s <-> %s)", NetNS, HostIP, NodeIP)
	if err := setupNetwork(); err != nil {
		return nil, err
	}
	if err := n.startRelay(opts); err != nil {
		return nil, err
	}
	if err := n.startHolder(opts); err != nil {
		return nil, err
	}
	if err := n.writeConfigs(opts.Cluster); err != nil {
		return nil, err
	}
	n.log("node: containerd")
	if err := n.spawn(opts, "containerd", true, "containerd", "--config", filepath.Join(dir, "containerd.toml")); err != nil {
		return nil, err
	}
	if err := n.waitContainerd(ctx); err != nil {
		return nil, err
	}
	n.log("node: images")
	if err := n.importBaseImages(ctx); err != nil {
		return nil, err
	}
	n.log("node: kubelet")
	if err := n.spawn(opts, "kubelet", true, filepath.Join(opts.BinDir, "kubelet"),
		"--config="+filepath.Join(dir, "kubelet.yaml"), "--kubeconfig="+filepath.Join(dir, "kubelet.kubeconfig"),
		"--root-dir="+n.RootDir, "--cert-dir="+filepath.Join(dir, "kubelet-pki"),
		"--hostname-override="+n.Name, "--node-ip="+NodeIP, "--v=1"); err != nil {
		return nil, err
	}
	if err := n.waitReady(ctx, opts.Cluster); err != nil {
		return nil, err
	}
	if opts.Detach {
		n.writePids()
	}
	return n, nil
}

// checkTools finds every program the node runs, so that a missing one
// fails with what to install.
func checkTools(binDir string) error {
	if _, err := os.Stat(filepath.Join(binDir, "kubelet")); err != nil {
		return fmt.Errorf("kubelet not found in %s: run tests/cluster/build-binaries.sh", binDir)
	}
	for _, t := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "nsenter", "unshare", "ip", "iptables"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s not found: install the Debian packages containerd, runc, containernetworking-plugins, iptables (tests/setup.sh does)", t)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		return errors.New("CNI plugins not found in /usr/lib/cni: install the Debian package containernetworking-plugins")
	}
	return nil
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupNetwork makes the namespace and the veth pair. The namespace gets
// no default route: nothing in it reaches beyond the host's veth end. The
// host gets a route to the pod network through the node, which keeps the
// traffic between the host and the node's own addresses.
func setupNetwork() error {
	if _, err := os.Stat("/run/netns/" + NetNS); err == nil {
		return fmt.Errorf("network namespace %s exists: another node runs, or a killed one left it (make node-down removes it)", NetNS)
	}
	for _, c := range [][]string{
		{"netns", "add", NetNS},
		{"link", "add", hostVeth, "type", "veth", "peer", "name", nodeVeth},
		{"link", "set", nodeVeth, "netns", NetNS},
		{"addr", "add", HostIP + "/30", "dev", hostVeth},
		{"link", "set", hostVeth, "up"},
		{"-n", NetNS, "addr", "add", NodeIP + "/30", "dev", nodeVeth},
		{"-n", NetNS, "link", "set", nodeVeth, "up"},
		{"-n", NetNS, "link", "set", "lo", "up"},
		// The host reaches pods (the API server's pod and service proxy,
		// tests' HTTP checks) through the node; the route goes with the veth.
		{"route", "add", PodCIDR, "via", NodeIP, "dev", hostVeth},
	} {
		if err := run("ip", c...); err != nil {
			return err
		}
	}
	// No kube-proxy runs: the one Service pods need, the API server's
	// (the first address of the service range, 10.0.0.1:443, which
	// in-cluster clients dial), is sent to the relay by hand, for pods
	// (PREROUTING) and host-network pods (OUTPUT).
	for _, chain := range []string{"PREROUTING", "OUTPUT"} {
		if err := run("nsenter", "--net=/run/netns/"+NetNS, "--", "iptables", "-t", "nat", "-A", chain,
			"-d", APIServiceIP+"/32", "-p", "tcp", "--dport", "443", "-j", "DNAT",
			"--to-destination", net.JoinHostPort(HostIP, strconv.Itoa(APIPort))); err != nil {
			return err
		}
	}
	return nil
}

// APIServiceIP is the kubernetes Service's address in tests/cluster's
// service range.
const APIServiceIP = "10.0.0.1"

// startHolder starts the process whose mount namespace the node's
// processes share: private, so that no mount of theirs reaches the host,
// with the kernel tunables the kubelet sets shadowed by plain files (it
// would set vm.overcommit_memory, kernel.panic and others for the whole
// machine).
func (n *Node) startHolder(opts Options) error {
	if err := n.spawn(opts, "holder", false, "nsenter", "--net=/run/netns/"+NetNS, "--",
		"unshare", "--mount", "--propagation", "private", "--", "sleep", "infinity"); err != nil {
		return err
	}
	n.holder = n.procs[len(n.procs)-1].Process.Pid
	// unshare has run once the process's mount namespace differs from ours.
	self, _ := os.Readlink("/proc/self/ns/mnt")
	for i := 0; ; i++ {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", n.holder))
		if err == nil && ns != self {
			break
		}
		if i == 100 {
			return fmt.Errorf("mount namespace holder did not start (%v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// containerd pins each pod's network namespace with a file in
	// /run/netns; in the node's own directory, none outlives the node.
	netns := filepath.Join(n.Dir, "netns")
	if err := os.MkdirAll(netns, 0o755); err != nil {
		return err
	}
	if err := run("nsenter", "--mount=/proc/"+strconv.Itoa(n.holder)+"/ns/mnt", "--", "mount", "--bind", netns, "/run/netns"); err != nil {
		return err
	}
	shadow := filepath.Join(n.Dir, "sysctl")
	for _, s := range []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
		"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"} {
		cur, err := os.ReadFile("/proc/sys/" + s)
		if err != nil {
			return err
		}
		f := filepath.Join(shadow, strings.ReplaceAll(s, "/", "."))
		if err := writeFile(f, string(cur)); err != nil {
			return err
		}
		if err := run("nsenter", "--mount=/proc/"+strconv.Itoa(n.holder)+"/ns/mnt", "--", "mount", "--bind", f, "/proc/sys/"+s); err != nil {
			return err
		}
	}
	return nil
}

// writeConfigs writes containerd's, the CNI's and the kubelet's
// configuration and the kubelet's credentials.
func (n *Node) writeConfigs(c *cluster.Cluster) error {
	for _, sub := range []string{"containerd", "cni/net.d", "kubelet", "kubelet-pki"} {
		if err := os.MkdirAll(filepath.Join(n.Dir, sub), 0o755); err != nil {
			return err
		}
	}
	for _, ctl := range cgroupControllers() {
		if err := os.MkdirAll(filepath.Join("/sys/fs/cgroup", ctl, cgroupRoot), 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", ctl, err)
		}
	}
	cert, key, err := c.IssueClient("node-"+n.Name, "system:node:"+n.Name, []string{"system:nodes"}, nil)
	if err != nil {
		return err
	}
	server := "https://" + net.JoinHostPort(HostIP, strconv.Itoa(APIPort))
	for _, f := range []struct{ path, content string }{
		{filepath.Join(n.Dir, "containerd.toml"), containerdConfig(n.Dir)},
		{filepath.Join(n.Dir, "cni/net.d/10-cairn.conflist"), cniConfig(n.Dir, PodCIDR)},
		{filepath.Join(n.Dir, "kubelet.yaml"), kubeletConfig(n.Dir, c.CAFile(), NodeIP, PodCIDR, "/"+cgroupRoot)},
		{filepath.Join(n.Dir, "resolv.conf"), "# no DNS: the node has no route off the machine\n"},
	} {
		if err := writeFile(f.path, f.content); err != nil {
			return err
		}
	}
	return cluster.WriteKubeconfig(filepath.Join(n.Dir, "kubelet.kubeconfig"), server, c.CAFile(), cert, key, "system:node:"+n.Name)
}

// cgroupControllers lists the cgroup hierarchies mounted under
// /sys/fs/cgroup: the v1 controllers and, on a hybrid host, "unified",
// where runc makes the pods' cgroups too.
func cgroupControllers() []string {
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// spawn starts a process; inNode runs it in the node's network and mount
// namespaces. Its output goes to DIR/logs/<name>.log.
func (n *Node) spawn(opts Options, name string, inNode bool, argv ...string) error {
	if inNode {
		argv = append([]string{"nsenter", "--net=/run/netns/" + NetNS, "--mount=/proc/" + strconv.Itoa(n.holder) + "/ns/mnt", "--"}, argv...)
	}
	log, err := os.Create(filepath.Join(n.Dir, "logs", name+".log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: opts.Detach, Pdeathsig: pdeath(opts.Detach)}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	n.procs = append(n.procs, cmd)
	go cmd.Wait() //nolint:errcheck // reaps; ProcessState tells the rest
	return nil
}

// pdeath kills a test's node processes with the test process, so that a
// killed test run leaves none behind.
func pdeath(detach bool) syscall.Signal {
	if detach {
		return 0
	}
	return syscall.SIGKILL
}

// startRelay forwards HostIP:APIPort to the API server on 127.0.0.1,
// which listens on loopback only.
func (n *Node) startRelay(opts Options) error {
	u, err := url.Parse(opts.Cluster.Server)
	if err != nil {
		return err
	}
	listen := net.JoinHostPort(HostIP, strconv.Itoa(APIPort))
	if opts.Detach && len(opts.RelayCommand) > 0 {
		argv := append(append([]string(nil), opts.RelayCommand...), listen, u.Host)
		return n.spawn(opts, "relay", false, argv...)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("API relay: %w", err)
	}
	n.relay = l
	go Relay(l, u.Host)
	return nil
}

func (n *Node) waitContainerd(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := n.ctr(ctx, "version"); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not start: %v (log in %s)", err, filepath.Join(n.Dir, "logs"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ctr runs ctr against the node's containerd, in its Kubernetes namespace.
func (n *Node) ctr(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", n.Socket, "-n", "k8s.io"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Command is argv run in the node's network and mount namespaces: a node
// agent there sees the pods' volume mounts, which the host does not, and
// reaches the API server at HostIP.
func (n *Node) Command(ctx context.Context, argv ...string) *exec.Cmd {
	args := append([]string{"--net=/run/netns/" + NetNS, "--mount=/proc/" + strconv.Itoa(n.holder) + "/ns/mnt", "--"}, argv...)
	return exec.CommandContext(ctx, "nsenter", args...)
}

// StartWithCluster starts a control plane made for a node (its API
// server's certificate names HostIP, a scheduler runs) under dir/cluster
// and a node joined to it under dir/node: what a test package needs that
// runs pods. stop ends both, the node first.
func StartWithCluster(ctx context.Context, dir string, logf func(string, ...any)) (c *cluster.Cluster, n *Node, stop func(), err error) {
	c, err = cluster.Start(ctx, cluster.Options{Dir: filepath.Join(dir, "cluster"), ExtraSANs: []string{HostIP}, Scheduler: true})
	if err != nil {
		return nil, nil, nil, err
	}
	n, err = Start(ctx, Options{Cluster: c, Dir: filepath.Join(dir, "node"), Log: logf})
	if err != nil {
		c.Stop()
		return nil, nil, nil, err
	}
	return c, n, func() { n.Stop(); c.Stop() }, nil
}
