package cache

import (
	"syscall"
	"testing"
)

// mountReadOnly mounts a read-only tmpfs on dir (tests run as root: file
// modes alone do not stop root from writing).
func mountReadOnly(t *testing.T, dir string) error {
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		return err
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	return syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, "")
}
