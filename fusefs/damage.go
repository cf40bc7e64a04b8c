package fusefs

import (
	"fmt"
	"sync"

	"github.com/cairn-backup/cairn/repo"
)

// damageLog remembers the damaged objects already reported, so that each
// is logged once and not on every lookup, and counts them for the mount
// command's exit status. Loads are still retried: an error may pass.
type damageLog struct {
	mu        sync.Mutex
	trees     map[repo.ID]bool
	snapshots map[repo.ID]bool
}

// damagedTree reports that the tree of the directory at path p in the
// mount cannot be loaded or decoded.
func (f *FS) damagedTree(id repo.ID, p string, err error) {
	d := &f.damage
	d.mu.Lock()
	first := !d.trees[id]
	if first {
		if d.trees == nil {
			d.trees = map[repo.ID]bool{}
		}
		d.trees[id] = true
	}
	d.mu.Unlock()
	if first {
		f.warn(fmt.Errorf("%s: cannot read this directory (EIO): %w", p, err))
	}
}

// unreadableSnapshot reports a snapshot file that cannot be read; it is
// left out of the mount.
func (f *FS) unreadableSnapshot(id repo.ID, err error) {
	d := &f.damage
	d.mu.Lock()
	first := !d.snapshots[id]
	if first {
		if d.snapshots == nil {
			d.snapshots = map[repo.ID]bool{}
		}
		d.snapshots[id] = true
	}
	d.mu.Unlock()
	if first {
		f.warn(fmt.Errorf("%w; it is left out of the mount", err))
	}
}

// Damaged returns how many snapshot files could not be read and how many
// directories could not be read so far.
func (f *FS) Damaged() (snapshots, trees int) {
	f.damage.mu.Lock()
	defer f.damage.mu.Unlock()
	return len(f.damage.snapshots), len(f.damage.trees)
}
