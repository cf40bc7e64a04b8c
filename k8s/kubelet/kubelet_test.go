package kubelet

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// layout makes a kubelet-like tree under a temp root: each entry is a
// directory, "file:<path>" a file, "link:<path>=<target>" a symlink.
func layout(t *testing.T, entries ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e, "file:"):
			p := filepath.Join(root, strings.TrimPrefix(e, "file:"))
			mkdir(t, filepath.Dir(p))
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(e, "link:"):
			p, target, _ := strings.Cut(strings.TrimPrefix(e, "link:"), "=")
			p = filepath.Join(root, p)
			mkdir(t, filepath.Dir(p))
			if err := os.Symlink(strings.ReplaceAll(target, "ROOT", root), p); err != nil {
				t.Fatal(err)
			}
		default:
			mkdir(t, filepath.Join(root, e))
		}
	}
	return root
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

const uid = "8d9f2c1e-0b7a-4c55-9a1e-3f0c2b1d4e5f"

func TestFind(t *testing.T) {
	outside := t.TempDir()
	pods := "pods/" + uid
	// A pod with the kinds of volumes a kubelet makes.
	typical := []string{
		pods + "/volumes/kubernetes.io~empty-dir/cache",
		pods + "/volumes/kubernetes.io~csi/pvc-1111/mount",
		"file:" + pods + "/volumes/kubernetes.io~csi/pvc-1111/vol_data.json",
		pods + "/volumes/kubernetes.io~csi/inline-secrets/mount",
		pods + "/volumes/kubernetes.io~nfs/pv-nfs",
		pods + "/volumes/kubernetes.io~local-volume/pv-local",
		pods + "/volumes/kubernetes.io~projected/kube-api-access-x",
		pods + "/volumes/example.com~fancy/scratch",
		pods + "/volumeDevices/kubernetes.io~csi/pvc-block",
		"file:" + pods + "/volumes/stray-file",
	}
	tests := []struct {
		name        string
		tree        []string
		uid, vol    string
		pv          string
		wantRel     string // relative to root
		wantPlugin  string
		wantErr     error
		errContains []string
	}{
		{name: "emptyDir", tree: typical, vol: "cache", wantRel: pods + "/volumes/kubernetes.io~empty-dir/cache", wantPlugin: "kubernetes.io/empty-dir"},
		{name: "CSI PVC goes to mount", tree: typical, vol: "data", pv: "pvc-1111", wantRel: pods + "/volumes/kubernetes.io~csi/pvc-1111/mount", wantPlugin: "kubernetes.io/csi"},
		{name: "CSI inline by volume name", tree: typical, vol: "inline-secrets", wantRel: pods + "/volumes/kubernetes.io~csi/inline-secrets/mount"},
		{name: "NFS PV", tree: typical, vol: "shared", pv: "pv-nfs", wantRel: pods + "/volumes/kubernetes.io~nfs/pv-nfs", wantPlugin: "kubernetes.io/nfs"},
		{name: "local PV", tree: typical, vol: "v", pv: "pv-local", wantRel: pods + "/volumes/kubernetes.io~local-volume/pv-local"},
		{name: "unknown plugin", tree: typical, vol: "scratch", wantRel: pods + "/volumes/example.com~fancy/scratch", wantPlugin: "example.com/fancy"},
		{name: "PV name, not volume name", tree: typical, vol: "cache", pv: "pvc-9999", wantErr: ErrVolumeNotFound,
			errContains: []string{"PV pvc-9999", "kubernetes.io~empty-dir/cache", "kubernetes.io~csi/pvc-1111"}},
		{name: "no such volume", tree: typical, vol: "nope", wantErr: ErrVolumeNotFound, errContains: []string{`volume "nope"`, "kubernetes.io~nfs/pv-nfs"}},
		{name: "block volume", tree: typical, vol: "raw", pv: "pvc-block", wantErr: ErrBlockVolume, errContains: []string{"volumeDevices/kubernetes.io~csi/pvc-block", "raw devices"}},
		{name: "no such pod", tree: typical, uid: "0000", vol: "cache", wantErr: ErrPodNotFound, errContains: []string{"--kubelet-root"}},
		{name: "pod without volumes dir", tree: []string{pods}, vol: "cache", wantErr: ErrVolumeNotFound, errContains: []string{"holds nothing"}},
		{name: "ambiguous", tree: []string{pods + "/volumes/kubernetes.io~empty-dir/data", pods + "/volumes/kubernetes.io~nfs/data"}, vol: "data",
			wantErr: ErrAmbiguous, errContains: []string{"kubernetes.io~empty-dir/data and kubernetes.io~nfs/data"}},
		{name: "CSI not mounted", tree: []string{"file:" + pods + "/volumes/kubernetes.io~csi/pvc-2/vol_data.json"}, vol: "d", pv: "pvc-2",
			wantErr: ErrVolumeNotFound, errContains: []string{"no mount directory"}},
		{name: "volume is a file", tree: []string{"file:" + pods + "/volumes/kubernetes.io~empty-dir/cache"}, vol: "cache", wantErr: ErrUnsafe, errContains: []string{"not a directory"}},

		// Hostile trees: no symlink below the root is followed.
		{name: "volume dir is a symlink", tree: []string{"link:" + pods + "/volumes/kubernetes.io~empty-dir/cache=" + outside}, vol: "cache", wantErr: ErrUnsafe, errContains: []string{"symlink"}},
		{name: "relative symlink up", tree: []string{pods + "/volumes/kubernetes.io~empty-dir", "link:" + pods + "/volumes/kubernetes.io~empty-dir/cache=../../../.."}, vol: "cache", wantErr: ErrUnsafe},
		{name: "plugin dir is a symlink", tree: []string{"link:" + pods + "/volumes/kubernetes.io~empty-dir=" + outside}, vol: "cache", wantErr: ErrUnsafe},
		{name: "CSI mount is a symlink", tree: []string{"link:" + pods + "/volumes/kubernetes.io~csi/pvc-3/mount=" + outside}, vol: "d", pv: "pvc-3", wantErr: ErrUnsafe},
		{name: "pod dir is a symlink", tree: []string{"pods", "link:" + pods + "=" + outside}, vol: "cache", wantErr: ErrUnsafe},
		{name: "volumes dir is a symlink", tree: []string{pods, "link:" + pods + "/volumes=" + outside}, vol: "cache", wantErr: ErrUnsafe},
		{name: "pods is a symlink", tree: []string{"link:pods=" + outside}, vol: "cache", wantErr: ErrUnsafe},

		// Names that are not one path component never reach the file system.
		{name: "uid with ..", tree: typical, uid: "../" + uid, vol: "cache", errContains: []string{"invalid pod UID"}},
		{name: "volume with slash", tree: typical, vol: "a/b", errContains: []string{"invalid volume name"}},
		{name: "pv ..", tree: typical, vol: "cache", pv: "..", errContains: []string{"invalid PV name"}},
	}
	// The outside directory holds what an escape would find.
	mkdir(t, filepath.Join(outside, "cache"))
	mkdir(t, filepath.Join(outside, "volumes", "kubernetes.io~empty-dir", "cache"))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := layout(t, tc.tree...)
			u := tc.uid
			if u == "" {
				u = uid
			}
			v, err := Find(root, u, tc.vol, tc.pv)
			if tc.wantRel != "" {
				if err != nil {
					t.Fatal(err)
				}
				if v.Path != filepath.Join(root, tc.wantRel) {
					t.Errorf("path %s, want %s", v.Path, tc.wantRel)
				}
				if tc.wantPlugin != "" && v.Plugin != tc.wantPlugin {
					t.Errorf("plugin %s, want %s", v.Plugin, tc.wantPlugin)
				}
				return
			}
			if err == nil {
				t.Fatalf("found %+v", v)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			for _, want := range tc.errContains {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error %q", err)
			}
		})
	}
}

// The root itself may be a symlink (/var/lib/kubelet -> /data/kubelet):
// that is the administrator's choice, not the tree's.
func TestFindRootSymlink(t *testing.T) {
	real := layout(t, "pods/"+uid+"/volumes/kubernetes.io~empty-dir/cache")
	link := filepath.Join(t.TempDir(), "kubelet")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	v, err := Find(link, uid, "cache", "")
	if err != nil {
		t.Fatal(err)
	}
	if v.Path != filepath.Join(link, "pods", uid, "volumes", "kubernetes.io~empty-dir", "cache") {
		t.Errorf("path %s", v.Path)
	}
	if _, err := Find(filepath.Join(t.TempDir(), "missing"), uid, "cache", ""); err == nil || !strings.Contains(err.Error(), "--kubelet-root") {
		t.Errorf("missing root: %v", err)
	}
}

// Every real volume directory is a mount point (tmpfs for a memory
// emptyDir, the driver's mount for CSI): Find crosses mounts.
func TestFindMountPoint(t *testing.T) {
	root := layout(t, "pods/"+uid+"/volumes/kubernetes.io~csi/pvc-m/mount")
	mnt := filepath.Join(root, "pods", uid, "volumes", "kubernetes.io~csi", "pvc-m", "mount")
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := Find(root, uid, "data", "pvc-m")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(v.Path, "f")); err != nil || string(b) != "data" {
		t.Errorf("read through %s: %q %v", v.Path, b, err)
	}
}
