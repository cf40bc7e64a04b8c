package archiver

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// A run is one archiving pass: the calling goroutine walks directories in
// sorted order and hands their other entries to stat workers (lstat,
// metadata, unchanged files taken from the parent), which hand files to
// read to file workers, which hand chunks of large files to blob workers. Every entry reports its finished node
// (nil when left out) to a callback; a directory's tree is saved when its
// last entry has reported, so trees come out the same whatever order the
// workers finish in.
type archRun struct {
	a      *Archiver
	ctx    context.Context
	cancel context.CancelCauseFunc
	stats  chan []statItem
	files  chan *archFile
	chunks chan archChunk
	oldRA  *snapshot.ReadAhead // the parent snapshot's trees, loaded ahead of the walk
	statWG sync.WaitGroup
	fileWG sync.WaitGroup
	blobWG sync.WaitGroup
}

func (a *Archiver) newRun(ctx context.Context) *archRun {
	ctx, cancel := context.WithCancelCause(ctx)
	rn := &archRun{
		a:      a,
		ctx:    ctx,
		cancel: cancel,
		stats:  make(chan []statItem, 2*a.workers),
		files:  make(chan *archFile, 64),
		chunks: make(chan archChunk, a.blobWork),
		oldRA:  a.loader.ReadAhead(ctx, func(p string, _ *snapshot.Node) bool { return !a.excluded(p) }),
	}
	// The walk takes a tree in about the time it takes to stat its
	// entries: two loads' worth ahead keep it fed, also over a network,
	// and a decoded tree of small files is ~350 bytes a node.
	rn.oldRA.Limit(2 * snapshot.TreeLoadConcurrency)
	for range a.workers {
		rn.statWG.Go(rn.statWorker)
		rn.fileWG.Go(rn.fileWorker)
	}
	for range a.blobWork {
		rn.blobWG.Go(rn.blobWorker)
	}
	return rn
}

// fail stops the run; the first error wins.
func (rn *archRun) fail(err error) { rn.cancel(err) }

// wait lets the workers drain and returns the error that stopped the run.
func (rn *archRun) wait() error {
	close(rn.stats)
	rn.statWG.Wait()
	rn.oldRA.Close() // the walk is over: no more parent trees wanted
	close(rn.files)
	rn.fileWG.Wait()
	close(rn.chunks)
	rn.blobWG.Wait()
	err := context.Cause(rn.ctx)
	rn.cancel(nil)
	return err
}

// archDir collects the nodes of one directory's entries by position.
type archDir struct {
	rn      *archRun
	nodes   []*snapshot.Node
	old     *oldTree     // the directory's tree in the parent snapshot, or nil
	pending atomic.Int64 // entries not yet reported, +1 while listing
	onTree  func(repo.ID)
}

// oldTree is a directory's tree in the parent snapshot, with its ID.
type oldTree struct {
	id   repo.ID
	tree *snapshot.Tree
}

func (o *oldTree) find(name string) *snapshot.Node {
	if o == nil {
		return nil
	}
	return o.tree.Find(name)
}

func (rn *archRun) newDir(n int, old *oldTree, onTree func(repo.ID)) *archDir {
	d := &archDir{rn: rn, nodes: make([]*snapshot.Node, n), old: old, onTree: onTree}
	d.pending.Store(int64(n) + 1)
	return d
}

// childDone records the node of entry slot (-1: listing finished).
func (d *archDir) childDone(slot int, n *snapshot.Node) {
	if slot >= 0 {
		d.nodes[slot] = n
	}
	if d.pending.Add(-1) == 0 {
		d.finish()
	}
}

func (d *archDir) finish() {
	rn := d.rn
	if rn.ctx.Err() != nil {
		return
	}
	t := &snapshot.Tree{Nodes: make([]*snapshot.Node, 0, len(d.nodes))}
	for _, n := range d.nodes {
		if n != nil {
			t.Nodes = append(t.Nodes, n)
		}
	}
	d.nodes = nil
	if d.old != nil && sameNodes(t.Nodes, d.old.tree.Nodes) {
		// Every entry is as the parent snapshot has it, subtrees included:
		// the tree would encode to the parent's (a tree is its nodes), and
		// the parent's is in the repository with everything it refers to.
		rn.a.st.treesReused.Add(1)
		d.onTree(d.old.id)
		return
	}
	buf, err := t.Encode()
	if err == nil {
		var id repo.ID
		if id, err = rn.a.saveBlob(rn.ctx, repo.TreeBlob, buf, repo.ID{}); err == nil {
			d.onTree(id)
			return
		}
	}
	rn.fail(err)
}

func joinPath(dir, name string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

func (a *Archiver) excluded(path string) bool { return a.opts.Excludes.Match(path) }

// oldTree loads the tree of a parent snapshot's directory node for the
// directory at path; nil when there is none or it cannot be loaded (then
// everything is read afresh). The walk asks in depth-first name order, so
// the parent's subtrees are read ahead of it.
func (rn *archRun) oldTree(path string, old *snapshot.Node) *oldTree {
	if old == nil || old.Type != snapshot.NodeDir || old.Subtree == nil {
		return nil
	}
	t, err := rn.oldRA.Tree(rn.ctx, path, *old.Subtree)
	if err != nil {
		return nil
	}
	return &oldTree{id: *old.Subtree, tree: t}
}

// sameNodes reports whether a directory's new nodes equal the parent's.
func sameNodes(nodes, old []*snapshot.Node) bool {
	if len(nodes) != len(old) {
		return false
	}
	for i, n := range nodes {
		if !n.Equal(old[i]) {
			return false
		}
	}
	return true
}

// entry archives the entry at path, of which fi is the lstat result, and
// eventually calls done with its node, or nil if it was left out. serial:
// see walkDir.
func (rn *archRun) entry(path string, fi os.FileInfo, old *snapshot.Node, done func(*snapshot.Node), serial bool) {
	a := rn.a
	node, err := NodeFromFileInfo(path, fi, false)
	if err != nil {
		a.reportError(path, err)
		done(nil)
		return
	}
	// Extended attributes: a cairn parent's for an unchanged inode (setting
	// or removing one changes the ctime); a file to be read gets them
	// from its open descriptor.
	xattrs := !a.opts.NoXattrs
	if xattrs && a.xattrsFromParent && sameInode(node, old) {
		node.ExtendedAttributes = old.ExtendedAttributes
		xattrs = false
	}
	switch node.Type {
	case snapshot.NodeFile:
		if rn.reuse(node, old) {
			if xattrs {
				node.ExtendedAttributes = readXattrs(path)
			}
			a.st.filesUnmodified.Add(1)
			a.countFile(node.Size)
			done(node)
			return
		}
		select {
		case rn.files <- &archFile{path: path, node: node, old: old, done: done, listed: listedState(fi), xattrs: xattrs}:
		case <-rn.ctx.Done():
		}
	case snapshot.NodeDir:
		if xattrs {
			node.ExtendedAttributes = readXattrs(path)
		}
		err := rn.walkDir(path, rn.oldTree(path, old), func(id repo.ID) {
			node.Subtree = &id
			a.countDir(old, id)
			done(node)
		}, serial)
		if err != nil {
			a.reportError(path, err)
			done(nil)
		}
	default:
		if xattrs {
			node.ExtendedAttributes = readXattrs(path)
		}
		done(node)
	}
}

// sameInode reports whether old is n's node in the parent snapshot with
// nothing about the inode changed since: same type, device, inode number
// and ctime (which every change of metadata or data sets).
func sameInode(n, old *snapshot.Node) bool {
	return old != nil && old.Type == n.Type && old.Inode == n.Inode && old.DeviceID == n.DeviceID &&
		old.ChangeTime.Equal(n.ChangeTime)
}

// reuse takes a file's content from the parent snapshot when the file looks
// unchanged (type, size, mtime, ctime and inode) and all its blobs exist.
func (rn *archRun) reuse(n, old *snapshot.Node) bool {
	if old == nil || old.Type != snapshot.NodeFile || old.Size != n.Size || old.Inode != n.Inode ||
		!old.ModTime.Equal(n.ModTime) || !old.ChangeTime.Equal(n.ChangeTime) {
		return false
	}
	for _, id := range old.Content {
		if !rn.a.r.HasBlob(repo.DataBlob, id) {
			return false
		}
	}
	n.Content = old.Content
	if n.Content == nil {
		n.Content = []repo.ID{}
	}
	return true
}

func (a *Archiver) countFile(size uint64) {
	a.st.files.Add(1)
	a.st.bytes.Add(size)
	a.progress.Files.Add(1)
	a.progress.Bytes.Add(size)
}

func (a *Archiver) countDir(old *snapshot.Node, id repo.ID) {
	switch {
	case old == nil || old.Type != snapshot.NodeDir || old.Subtree == nil:
		a.st.dirsNew.Add(1)
	case *old.Subtree == id:
		a.st.dirsUnmodified.Add(1)
	default:
		a.st.dirsChanged.Add(1)
	}
	a.progress.Dirs.Add(1)
}

// walkDir lists the directory at path and archives its entries; onTree
// gets the directory's tree ID once all are done. An error means the
// directory could not be listed and onTree will not be called.
//
// Subdirectories are walked here, in name order (the order the parent's
// trees are read ahead in); the other entries go in batches to the stat
// workers, or are done here when they are all busy. serial (a stat worker
// walking a directory that was a file when listed) does everything here.
func (rn *archRun) walkDir(path string, old *oldTree, onTree func(repo.ID), serial bool) error {
	ents, err := readDirEntries(path)
	if err != nil {
		return err
	}
	if afterList != nil {
		afterList(path)
	}
	a := rn.a
	d := rn.newDir(len(ents), old, onTree)
	var batch []statItem
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if !serial {
			select {
			case rn.stats <- batch:
				batch = nil
				return
			default:
			}
		}
		rn.statBatch(batch, serial)
		batch = batch[:0]
	}
	for i, e := range ents {
		if rn.ctx.Err() != nil {
			return nil // the run failed; nobody waits for this tree
		}
		p := joinPath(path, e.name)
		if a.excluded(p) {
			d.childDone(i, nil)
			continue
		}
		if !e.dir {
			batch = append(batch, statItem{d: d, slot: i, path: p, name: e.name, old: old.find(e.name)})
			if len(batch) == statBatchSize {
				flush()
			}
			continue
		}
		flush() // the workers go on with these while the walk descends
		fi, err := os.Lstat(p)
		if err != nil {
			a.reportError(p, err)
			d.childDone(i, nil)
			continue
		}
		rn.entry(p, fi, old.find(e.name), func(n *snapshot.Node) { d.childDone(i, n) }, serial)
	}
	flush()
	d.childDone(-1, nil)
	return nil
}

// pathTrie holds the targets of a backup by path component; the root tree
// is built from it, with the real metadata of the directories leading to
// each target.
type pathTrie struct {
	children map[string]*pathTrie
	target   bool
}

func buildTrie(targets []string) *pathTrie {
	root := &pathTrie{}
	for _, p := range targets {
		t := root
		for _, c := range strings.Split(p, "/") {
			if c == "" {
				continue
			}
			if t.target {
				break // an ancestor is a target already and covers p
			}
			if t.children == nil {
				t.children = map[string]*pathTrie{}
			}
			if t.children[c] == nil {
				t.children[c] = &pathTrie{}
			}
			t = t.children[c]
		}
		t.target = true
		t.children = nil // everything below is covered by p
	}
	return root
}

// walkTargets archives the trie's targets into the root tree.
func (rn *archRun) walkTargets(root *pathTrie, oldRoot *repo.ID, onTree func(repo.ID)) error {
	var old *oldTree
	if oldRoot != nil {
		old = rn.oldTree("/", &snapshot.Node{Type: snapshot.NodeDir, Subtree: oldRoot})
	}
	if root.target { // "/" itself
		return rn.walkDir("/", old, onTree, false)
	}
	rn.walkVirtual("/", root, old, onTree)
	return nil
}

// walkVirtual saves a directory on the way to targets: it holds only the
// entries leading to targets.
func (rn *archRun) walkVirtual(path string, t *pathTrie, old *oldTree, onTree func(repo.ID)) {
	a := rn.a
	names := make([]string, 0, len(t.children))
	for name := range t.children {
		names = append(names, name)
	}
	slices.Sort(names)
	d := rn.newDir(len(names), old, onTree)
	for i, name := range names {
		if rn.ctx.Err() != nil {
			return
		}
		p := joinPath(path, name)
		child, oldNode := t.children[name], old.find(name)
		done := func(n *snapshot.Node) { d.childDone(i, n) }
		if child.target {
			if a.excluded(p) {
				done(nil)
				continue
			}
			fi, err := os.Lstat(p)
			if err != nil {
				a.reportError(p, err)
				done(nil)
				continue
			}
			rn.entry(p, fi, oldNode, done, false)
			continue
		}
		// Follow symlinks here: the target lies below, so this is a directory.
		fi, err := os.Stat(p)
		var node *snapshot.Node
		if err == nil {
			node, err = NodeFromFileInfo(p, fi, !a.opts.NoXattrs)
		}
		if err != nil {
			a.reportError(p, err)
			done(nil)
			continue
		}
		node.Type, node.Name = snapshot.NodeDir, name
		rn.walkVirtual(p, child, rn.oldTree(p, oldNode), func(id repo.ID) {
			node.Subtree = &id
			a.countDir(oldNode, id)
			done(node)
		})
	}
	d.childDone(-1, nil)
}
