// Package kubelet finds pod volumes on a node the way the kubelet lays
// them out under its root directory (--root-dir, /var/lib/kubelet):
//
//	<root>/pods/<pod uid>/volumes/<plugin dir>/<dir>
//
// where <plugin dir> is the volume plugin's name with "/" escaped as "~"
// (kubernetes.io~empty-dir, kubernetes.io~csi, kubernetes.io~nfs, …) and
// <dir> is the PV name for a PVC-backed volume, the pod's volume name
// otherwise; CSI volumes have their files one level down, in <dir>/mount.
// Block volumes live under <root>/pods/<uid>/volumeDevices instead.
//
// The plugin directory is found by reading the pod's volumes directory,
// not from a list of known plugins, so out-of-tree and future plugins
// work. The tree is treated as hostile: no symlink below the root is
// followed (the root itself may be one: it is the administrator's
// choice). It imports no Kubernetes client; the node agent uses it.
package kubelet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Sentinel errors callers branch on (errors.Is).
var (
	ErrPodNotFound    = errors.New("pod directory not found")
	ErrVolumeNotFound = errors.New("volume directory not found")
	ErrAmbiguous      = errors.New("volume matches several directories")
	ErrBlockVolume    = errors.New("block volume")
	ErrUnsafe         = errors.New("unsafe kubelet directory")
)

// csiPluginDir is the one plugin whose volumes keep their files in a
// "mount" subdirectory (next to vol_data.json).
const csiPluginDir = "kubernetes.io~csi"

// Volume is a pod volume's directory on this node.
type Volume struct {
	Path      string // absolute
	PluginDir string // "kubernetes.io~csi"
	Plugin    string // "kubernetes.io/csi"
}

// Find returns the directory of the pod's volume: pv is the bound PV's
// name for a PVC-backed volume, "" otherwise. It fails with ErrPodNotFound
// when the pod has no directory here (wrong node or kubelet root),
// ErrBlockVolume for a block volume, ErrVolumeNotFound (naming what the
// pod's directory does hold) or ErrAmbiguous when not exactly one plugin
// directory has it, and ErrUnsafe when a symlink is in the way.
//
// Every directory above Path belongs to the kubelet (root); the pod owns
// only what is below it, which the archiver and restorer never follow.
func Find(root, podUID, volume, pv string) (*Volume, error) {
	for _, n := range [][2]string{{"pod UID", podUID}, {"volume name", volume}, {"PV name", pv}} {
		if n[1] == "" && n[0] == "PV name" {
			continue
		}
		if err := checkName(n[0], n[1]); err != nil {
			return nil, err
		}
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("kubelet root %s: %w (is --kubelet-root right and mounted into the agent?)", root, err)
	}
	defer unix.Close(rootFd)
	what := fmt.Sprintf("volume %q of pod %s", volume, podUID)
	podRel := filepath.Join("pods", podUID)
	podFd, err := openBeneath(rootFd, podRel, unix.O_PATH)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%s: %w: no %s: is the pod on this node, and --kubelet-root right?", what, ErrPodNotFound, filepath.Join(root, podRel))
		}
		return nil, classify(root, podRel, err)
	}
	defer unix.Close(podFd)

	dir := volume
	if pv != "" {
		dir = pv
	}
	found, matches, err := search(root, podFd, podRel, dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if pv != "" {
		what += fmt.Sprintf(" (PV %s)", pv)
	}
	switch len(matches) {
	case 1:
		pd := matches[0]
		p := filepath.Join(root, podRel, "volumes", pd, dir)
		if pd == csiPluginDir {
			p = filepath.Join(p, "mount")
		}
		return &Volume{Path: p, PluginDir: pd, Plugin: strings.ReplaceAll(pd, "~", "/")}, nil
	case 0:
		if block := blockDevice(podFd, dir); block != "" {
			return nil, fmt.Errorf("%s: %w at %s: cairn copies file systems, not raw devices; exclude it from file system backup",
				what, ErrBlockVolume, filepath.Join(root, podRel, "volumeDevices", block))
		}
		held := "nothing"
		if len(found) > 0 {
			held = strings.Join(found, ", ")
		}
		return nil, fmt.Errorf("%s: %w in %s (it holds %s): is the volume mounted yet?",
			what, ErrVolumeNotFound, filepath.Join(root, podRel, "volumes"), held)
	default:
		var ps []string
		for _, m := range matches {
			ps = append(ps, m+"/"+dir)
		}
		return nil, fmt.Errorf("%s: %w: %s under %s", what, ErrAmbiguous, strings.Join(ps, " and "), filepath.Join(root, podRel, "volumes"))
	}
}

// maxFound bounds the directory names an error lists.
const maxFound = 20

// search reads <pod>/volumes and returns the "<plugin dir>/<entry>" names
// it holds (for errors) and the plugin dirs that have dir (for CSI, with
// its mount directory).
func search(root string, podFd int, podRel, dir string) (found, matches []string, err error) {
	volFd, err := openBeneath(podFd, "volumes", unix.O_RDONLY)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, classify(root, filepath.Join(podRel, "volumes"), err)
	}
	plugins, err := readDir(volFd)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", filepath.Join(root, podRel, "volumes"), err)
	}
	for _, pd := range plugins {
		rel := filepath.Join(podRel, "volumes", pd)
		entries, err := readDirAt(podFd, filepath.Join("volumes", pd))
		if err != nil {
			if errors.Is(err, unix.ENOTDIR) {
				continue // a stray file is not a plugin
			}
			return nil, nil, classify(root, rel, err)
		}
		for _, e := range entries {
			if len(found) < maxFound {
				found = append(found, pd+"/"+e)
			}
		}
		if !slices.Contains(entries, dir) {
			continue
		}
		target := filepath.Join("volumes", pd, dir)
		if pd == csiPluginDir {
			target = filepath.Join(target, "mount")
		}
		fd, err := openBeneath(podFd, target, unix.O_PATH)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil, nil, fmt.Errorf("%w: %s has no mount directory: the CSI driver has not mounted it (yet)",
					ErrVolumeNotFound, filepath.Join(root, rel, dir))
			}
			return nil, nil, classify(root, filepath.Join(podRel, target), err)
		}
		unix.Close(fd)
		matches = append(matches, pd)
	}
	if len(found) == maxFound {
		found = append(found, "…")
	}
	return found, matches, nil
}

// blockDevice returns "<plugin dir>/<dir>" when the pod has dir as a block
// device, else "".
func blockDevice(podFd int, dir string) string {
	plugins, err := readDirAt(podFd, "volumeDevices")
	if err != nil {
		return ""
	}
	for _, pd := range plugins {
		if entries, err := readDirAt(podFd, filepath.Join("volumeDevices", pd)); err == nil && slices.Contains(entries, dir) {
			return pd + "/" + dir
		}
	}
	return ""
}

// openBeneath opens rel below dirFd as a directory, refusing symlinks,
// "..", and magic links anywhere in rel. Mount points are crossed: every
// volume is one.
func openBeneath(dirFd int, rel string, flags uint64) (int, error) {
	how := unix.OpenHow{
		Flags:   flags | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(dirFd, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

func readDirAt(dirFd int, rel string) ([]string, error) {
	fd, err := openBeneath(dirFd, rel, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	return readDir(fd)
}

// readDir lists a directory fd and closes it, names sorted.
func readDir(fd int) ([]string, error) {
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// classify turns an openat2 error into a one-line error naming the path.
func classify(root, rel string, err error) error {
	p := filepath.Join(root, rel)
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%w: %s is or passes through a symlink; the kubelet makes none there, so it is refused", ErrUnsafe, p)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%w: %s is not a directory", ErrUnsafe, p)
	default:
		return fmt.Errorf("%s: %w", p, err)
	}
}

// checkName accepts one path component, as pod UIDs, volume names (DNS
// labels) and PV names (DNS subdomains) always are.
func checkName(what, s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") || len(s) > 253 {
		return fmt.Errorf("invalid %s %q: want one path component", what, s)
	}
	return nil
}
