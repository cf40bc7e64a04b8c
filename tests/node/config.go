package node

import (
	"fmt"
	"os"
	"path/filepath"
)

// sandboxImage is the pause image's name: the kubelet and containerd
// never pull it, the node imports it.
const sandboxImage = "registry.k8s.io/pause:3.10"

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

// containerdConfig keeps every containerd path below dir, so that the
// node's containerd shares nothing with another one on the machine.
func containerdConfig(dir string) string {
	return fmt.Sprintf(`version = 2
root = "%[1]s/containerd/root"
state = "%[1]s/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.introspection.unused"]

[grpc]
  address = "%[1]s/containerd/containerd.sock"

[ttrpc]
  address = "%[1]s/containerd/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%[2]s"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "%[1]s/cni/net.d"

[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/containerd/opt"
`, dir, sandboxImage)
}

// cniConfig is a bridge with host-local addresses; masquerading lets pods
// reach the host's end of the veth (the API server relay) and nothing
// else: the node's network namespace has no default route.
func cniConfig(dir, podCIDR string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "cairn-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "%s/cni/ipam",
        "ranges": [[{"subnet": "%s"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, dir, podCIDR)
}

// kubeletConfig: cgroup v1 through cgroupfs (the machines here run a
// hybrid hierarchy without systemd), no swap check, eviction thresholds
// low enough for a shared disk, the API server's client certificates
// trusted for exec and logs.
func kubeletConfig(dir, caFile, nodeIP, podCIDR, cgroupRoot string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%[1]s/containerd/containerd.sock
address: %[3]s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %[2]s}
authorization: {mode: AlwaysAllow}
clusterDomain: cluster.local
resolvConf: %[1]s/resolv.conf
failSwapOn: false
protectKernelDefaults: false
podCIDR: %[4]s
maxPods: 50
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "50Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
shutdownGracePeriod: 0s
cgroupRoot: %[5]s
`, dir, caFile, nodeIP, podCIDR, cgroupRoot)
}
