package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Cluster is a running control plane.
type Cluster struct {
	Dir        string // certificates, data, logs and kubeconfigs
	Kubeconfig string // admin (system:masters) kubeconfig
	Server     string // https://127.0.0.1:PORT
	ca         *keyPair
	procs      []*exec.Cmd
	exited     []chan struct{} // closed when procs[i] has exited (reaped)
	client     *http.Client
}

// Options for Start.
type Options struct {
	BinDir string // kube-apiserver, kube-controller-manager, etcd; "" = FindBinaries
	Dir    string // working directory (created); required
	// Detach starts the processes in their own session so they outlive the
	// caller (make cluster-up); their PIDs go to Dir/pids.
	Detach bool
	// ExtraSANs are more names and addresses of the API server's serving
	// certificate: the test node reaches it at its veth address.
	ExtraSANs []string
	// Scheduler also runs kube-scheduler (in BinDir), for clusters with
	// a kubelet.
	Scheduler bool
}

// FindBinaries returns the directory with the control-plane binaries:
// $CAIRN_K8S_BIN, else the cache filled by tests/cluster/build-binaries.sh.
func FindBinaries() (string, error) {
	if d := os.Getenv("CAIRN_K8S_BIN"); d != "" {
		return d, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	d := filepath.Join(cache, "cairn", "k8s-v1.37.2", "bin")
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl"} {
		if _, err := os.Stat(filepath.Join(d, b)); err != nil {
			return "", fmt.Errorf("%s not found in %s: run tests/cluster/build-binaries.sh (≈12 min once)", b, d)
		}
	}
	return d, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start brings up etcd, kube-apiserver and kube-controller-manager and waits
// until the API server is ready and the default ServiceAccount exists.
//
// A process that exits while starting (another test process took one of
// the free ports between the check and the bind) makes Start try again
// with new ports, up to three times.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	for attempt := 1; ; attempt++ {
		c, err := startOnce(ctx, opts)
		if err == nil || !errors.Is(err, errExited) || attempt == 3 || ctx.Err() != nil {
			return c, err
		}
		// etcd's data dir remembers the old ports.
		if dir, derr := filepath.Abs(opts.Dir); derr == nil {
			os.RemoveAll(filepath.Join(dir, "etcd"))
		}
	}
}

func startOnce(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.BinDir == "" {
		if opts.BinDir, err = FindBinaries(); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return nil, err
	}
	c = &Cluster{Dir: dir}
	if opts.Scheduler {
		if _, err := os.Stat(filepath.Join(opts.BinDir, "kube-scheduler")); err != nil {
			return nil, fmt.Errorf("kube-scheduler not found in %s: run tests/cluster/build-binaries.sh", opts.BinDir)
		}
	}
	started := c // the error returns below set c to nil
	defer func() {
		if err != nil {
			started.Stop()
		}
	}()
	ports := make([]int, 4)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	c.Server = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	ca, err := newCA()
	if err != nil {
		return nil, err
	}
	c.ca = ca
	if err := os.WriteFile(filepath.Join(pki, "ca.crt"), ca.certPEM(), 0o644); err != nil {
		return nil, err
	}
	caKey, _ := ca.keyPEM()
	os.WriteFile(filepath.Join(pki, "ca.key"), caKey, 0o600)
	leaves := []struct {
		name, cn string
		orgs     []string
		hosts    []string
	}{
		{"apiserver", "kube-apiserver", nil, append([]string{"127.0.0.1", "localhost", "10.0.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}, opts.ExtraSANs...)},
		{"admin", "cairn-admin", []string{"system:masters"}, nil},
		{"controller-manager", "system:kube-controller-manager", nil, nil},
		{"scheduler", "system:kube-scheduler", nil, nil},
		{"kubelet-client", "kube-apiserver-kubelet-client", []string{"kubeadm:cluster-admins"}, nil},
	}
	for _, l := range leaves {
		kp, err := ca.issue(l.cn, l.orgs, l.hosts)
		if err != nil {
			return nil, err
		}
		if err := kp.write(pki, l.name); err != nil {
			return nil, err
		}
	}
	if err := writeServiceAccountKey(pki); err != nil {
		return nil, err
	}
	p := func(n string) string { return filepath.Join(pki, n) }
	c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := kubeconfig(c.Kubeconfig, c.Server, p("ca.crt"), p("admin.crt"), p("admin.key"), "cairn-admin"); err != nil {
		return nil, err
	}
	cmKubeconfig := filepath.Join(dir, "controller-manager.kubeconfig")
	if err := kubeconfig(cmKubeconfig, c.Server, p("ca.crt"), p("controller-manager.crt"), p("controller-manager.key"), "system:kube-controller-manager"); err != nil {
		return nil, err
	}

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	if err := c.spawn(opts, "etcd", "--name=cairn", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=cairn="+peerURL, "--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return nil, err
	}
	if err := c.spawn(opts, "kube-apiserver",
		"--etcd-servers="+etcdURL, "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		"--tls-cert-file="+p("apiserver.crt"), "--tls-private-key-file="+p("apiserver.key"),
		"--client-ca-file="+p("ca.crt"), "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p("sa.pub"), "--service-account-signing-key-file="+p("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24", "--service-node-port-range=30000-32767",
		"--allow-privileged=true", "--enable-priority-and-fairness=false",
		// exec, logs and port-forward go through the kubelet: the API
		// server authenticates with a client certificate of this CA.
		"--kubelet-client-certificate="+p("kubelet-client.crt"), "--kubelet-client-key="+p("kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--profiling=false", "--v=0"); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, p); err != nil {
		return nil, err
	}
	if err := c.spawn(opts, "kube-controller-manager",
		"--kubeconfig="+cmKubeconfig, "--authentication-kubeconfig="+cmKubeconfig, "--authorization-kubeconfig="+cmKubeconfig,
		"--controllers=*", "--use-service-account-credentials", "--root-ca-file="+p("ca.crt"),
		"--service-account-private-key-file="+p("sa.key"),
		"--cluster-signing-cert-file="+p("ca.crt"), "--cluster-signing-key-file="+p("ca.key"),
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports[3]),
		"--profiling=false"); err != nil {
		return nil, err
	}
	if opts.Scheduler {
		schedKubeconfig := filepath.Join(dir, "scheduler.kubeconfig")
		if err := kubeconfig(schedKubeconfig, c.Server, p("ca.crt"), p("scheduler.crt"), p("scheduler.key"), "system:kube-scheduler"); err != nil {
			return nil, err
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		if err := c.spawn(opts, "kube-scheduler", "--kubeconfig="+schedKubeconfig,
			"--authentication-kubeconfig="+schedKubeconfig, "--authorization-kubeconfig="+schedKubeconfig,
			"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port)); err != nil {
			return nil, err
		}
	}
	// The default ServiceAccount is made by the controller-manager, last.
	if err := c.waitFor(ctx, 90*time.Second, "/api/v1/namespaces/default/serviceaccounts/default"); err != nil {
		return nil, fmt.Errorf("controller-manager did not create the default ServiceAccount: %w (logs in %s)", err, dir)
	}
	if opts.Detach {
		var pids []string
		for _, pr := range c.procs {
			pids = append(pids, strconv.Itoa(pr.Process.Pid))
		}
		os.WriteFile(filepath.Join(dir, "pids"), []byte(strings.Join(pids, "\n")+"\n"), 0o644)
		c.procs = nil // not ours to stop
	}
	return c, nil
}

func (c *Cluster) spawn(opts Options, name string, args ...string) error {
	log, err := os.Create(filepath.Join(c.Dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(opts.BinDir, name), args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = os.Environ()
	// Die with the test process (unless detached): no orphans eating RAM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if !opts.Detach && runtime.GOOS == "linux" {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	log.Close()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }() //nolint:errcheck // the exit is what matters
	c.procs = append(c.procs, cmd)
	c.exited = append(c.exited, done)
	return nil
}

// errExited says a process of the control plane exited while it started:
// most often a port another process took between freePort and the bind.
var errExited = errors.New("exited while starting")

// exitedProc names a process that has exited, or "".
func (c *Cluster) exitedProc() string {
	for i, done := range c.exited {
		select {
		case <-done:
			return filepath.Base(c.procs[i].Path)
		default:
		}
	}
	return ""
}

func (c *Cluster) waitReady(ctx context.Context, p func(string) string) error {
	caPEM, err := os.ReadFile(p("ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(p("admin.crt"), p("admin.key"))
	if err != nil {
		return err
	}
	c.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}
	if err := c.waitFor(ctx, 90*time.Second, "/readyz"); err != nil {
		return fmt.Errorf("kube-apiserver not ready: %w (logs in %s)", err, c.Dir)
	}
	return nil
}

func (c *Cluster) waitFor(ctx context.Context, limit time.Duration, path string) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		if name := c.exitedProc(); name != "" {
			return fmt.Errorf("%s %w", name, errExited)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+path, nil)
		resp, err := c.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop kills the processes (controller-manager first) and waits for them.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		pr, done := c.procs[i], c.exited[i]
		if pr.Process != nil {
			pr.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				pr.Process.Kill()
				<-done
			}
		}
	}
	c.procs, c.exited = nil, nil
}

// StopDetached ends a cluster started with Detach, from its pid file.
func StopDetached(dir string) error {
	buf, err := os.ReadFile(filepath.Join(dir, "pids"))
	if err != nil {
		return fmt.Errorf("no running cluster in %s: %w", dir, err)
	}
	fields := strings.Fields(string(buf))
	for i := len(fields) - 1; i >= 0; i-- {
		pid, err := strconv.Atoi(fields[i])
		if err != nil {
			continue
		}
		syscall.Kill(pid, syscall.SIGTERM)
		for j := 0; j < 100 && syscall.Kill(pid, 0) == nil; j++ {
			time.Sleep(100 * time.Millisecond)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return os.Remove(filepath.Join(dir, "pids"))
}
