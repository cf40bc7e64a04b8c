package archiver

import (
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/snapshot"
)

// statBatchSize is how many entries of a directory go to a stat worker at
// once: enough to make the hand-over cheap, few enough to share a
// directory of small files between the workers.
const statBatchSize = 32

// afterList, when set by tests, runs after a directory is listed, to
// change it before its entries are looked at.
var afterList func(dir string)

// statItem is one directory entry, not a directory when it was listed,
// for a stat worker.
type statItem struct {
	d    *archDir
	slot int
	path string
	name string // last element of path; every item of a batch is in one directory
	old  *snapshot.Node
}

func (rn *archRun) statWorker() {
	for batch := range rn.stats {
		rn.statBatch(batch, true)
	}
}

// statBatch lstats the entries of batch and archives them. serial: a
// directory found among them (one that replaced a file since it was
// listed) is walked here, its entries too.
func (rn *archRun) statBatch(batch []statItem, serial bool) {
	if len(batch) == 0 {
		return
	}
	// Each entry is looked up in its directory, opened once for the
	// batch, not by its whole path again: the path walk cost more than
	// the stat itself.
	dir := newDirStat(strings.TrimSuffix(batch[0].path, batch[0].name))
	defer dir.close()
	for _, it := range batch {
		if rn.ctx.Err() != nil {
			return // the run failed; nobody waits for these
		}
		fi, err := dir.lstat(it.path, it.name)
		if err != nil {
			rn.a.reportError(it.path, err)
			it.d.childDone(it.slot, nil)
			continue
		}
		rn.entry(it.path, fi, it.old, func(n *snapshot.Node) { it.d.childDone(it.slot, n) }, serial)
	}
}

// dirEntry is a directory's entry as listed: its name and whether it was
// a directory.
type dirEntry struct {
	name string
	dir  bool
}

// readDirEntries lists a directory, sorted by name. The types come from
// the listing (file systems that do not give them are asked by lstat).
func readDirEntries(path string) ([]dirEntry, error) {
	f, err := openDir(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]dirEntry, len(des))
	for i, de := range des {
		out[i] = dirEntry{name: de.Name(), dir: de.IsDir()}
	}
	slices.SortFunc(out, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
	return out, nil
}
