// Package restorer writes a snapshot (or a part of it) back to a directory
// with its metadata, without following symlinks planted in the target.
package restorer

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/match"
	"golang.org/x/sys/unix"
)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	Target  string         // created if missing
	Include *match.Matcher // nil/empty: everything; else matching paths and the dirs leading to them
	Exclude *match.Matcher
	// Verify re-reads every restored file and checks it against the hashes
	// of its content blobs.
	Verify   bool
	Progress *snapshot.Progress
	// OnError is told about each item (by its slash path in the snapshot)
	// that could not be restored; the restore goes on. Calls are serialized.
	OnError func(path string, err error)
	Workers int // parallel pack readers; 0 = a default for this machine
}

// Restore writes the tree of sn into opts.Target. subpath "" or "/" restores
// the whole snapshot with full paths recreated under Target (as restic does);
// a directory subpath like "/tmp/x" puts that directory's contents directly
// into Target (restic's `snapshot:subfolder`), a file subpath puts that file
// there. Include/Exclude always see full snapshot paths.
//
// It returns how many items failed (reported through OnError); err is only
// for problems that stop the whole restore.
func Restore(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, subpath string, opts RestoreOptions) (int, error) {
	rs, err := newRestorer(r, opts)
	if err != nil {
		return 0, err
	}
	if err := rs.run(ctx, sn, subpath); err != nil {
		return rs.failures(), err
	}
	return rs.failures(), nil
}

// Workers beyond the core count help with remote backends; the cap bounds
// memory (each worker holds up to two blob buffers).
func defaultWorkers() int { return min(max(2*runtime.GOMAXPROCS(0), 4), 8) }

// restorer walks the tree and plans files into windows (restorer_window.go)
// whose data is restored while the walk goes on; per-file state lives only
// as long as its window.
type restorer struct {
	repo   *repo.Repository
	loader *snapshot.TreeLoader
	ra     *snapshot.ReadAhead // trees read ahead of planning, while it runs
	opts   RestoreOptions
	prog   *snapshot.Progress
	fs     *targetFS

	// onPath holds the trees being planned from the root down to the
	// current directory: a subtree found there again is a cycle.
	onPath map[repo.ID]struct{}

	errMu  sync.Mutex
	failed int

	// linkFirst: the first name of each hard-linked inode (Links > 1) seen
	// so far; the only per-file state kept for the whole restore.
	linkFirst map[inodeKey]*fileJob
	win       *window // being planned
	pipe      *pipeline
	// noDirect: the target's file system refused O_DIRECT; files are
	// written through the page cache from then on.
	noDirect atomic.Bool
}

// fileJob is one regular file to restore. It is created on the first write
// (its blobs arrive in pack order, from several workers) and finished by
// whichever write completes it.
type fileJob struct {
	snap    string // slash path in the snapshot, for errors and matching
	dir     *dirState
	rel     string // path below the target
	node    *snapshot.Node
	size    int64
	content []*blobJob

	mu        sync.Mutex
	created   bool
	remaining atomic.Int32 // writes still to do
	bad       atomic.Bool
	sparse    atomic.Bool // some all-zero blob was skipped
	direct    *directFile // written with O_DIRECT (restorer_direct.go); nil if not
	// ino identifies the inode created, for files opened again later (more
	// blobs, verify, hard links): a name swapped meanwhile is refused.
	ino, dev uint64
}

// needsIdentity reports whether the file will be opened or linked again
// after its creation.
func (fj *fileJob) needsIdentity() bool { return len(fj.content) > 1 || fj.node.Links > 1 }

// blobJob is one data blob and every place it has to be written to.
type blobJob struct {
	id      repo.ID
	locs    []repo.PackedBlob // locs[0] is read first; the rest on failure
	size    uint32            // plaintext length
	targets []blobTarget
}

type blobTarget struct {
	file *fileJob
	off  int64
}

type packJob struct {
	id    repo.ID
	blobs []*blobJob // sorted by offset before reading
}

type dirState struct {
	snap    string
	name    string
	rel     string         // path below the target; "." for the target itself
	node    *snapshot.Node // nil for the restore target itself
	parent  *dirState
	created bool
	bad     bool
	// fresh: created empty by this restore below fresh parents, so a file
	// created in it gets exactly its create mode less the umask.
	fresh bool

	// Owned by targetFS: the open descriptor while cached.
	fd   int
	refs int
	elem *list.Element
}

func (d *dirState) child(snap, name string, n *snapshot.Node) *dirState {
	return &dirState{snap: snap, name: name, rel: d.join(name), node: n, parent: d, fd: -1}
}

// join returns the path below the target of entry name of d.
func (d *dirState) join(name string) string {
	if d.parent == nil {
		return name
	}
	return d.rel + "/" + name
}

type inodeKey struct{ dev, ino uint64 }

type hardLink struct {
	snap  string
	dir   *dirState
	name  string
	first *fileJob
}

func newRestorer(r *repo.Repository, opts RestoreOptions) (*restorer, error) {
	if opts.Target == "" {
		return nil, errors.New("restore: no target directory given")
	}
	if opts.Workers <= 0 {
		opts.Workers = defaultWorkers()
	}
	prog := opts.Progress
	if prog == nil {
		prog = &snapshot.Progress{}
	}
	return &restorer{
		repo: r,
		// The walk asks for each tree once (the read-ahead holds what is
		// coming); the cache only serves subtrees stored more than once.
		loader:    snapshot.NewTreeLoader(r, 32),
		opts:      opts,
		prog:      prog,
		linkFirst: map[inodeKey]*fileJob{},
		onPath:    map[repo.ID]struct{}{},
	}, nil
}

func (rs *restorer) failures() int {
	rs.errMu.Lock()
	defer rs.errMu.Unlock()
	return rs.failed
}

// fail reports one failed item.
func (rs *restorer) fail(snapPath string, err error) {
	rs.prog.Errors.Add(1)
	rs.errMu.Lock()
	defer rs.errMu.Unlock()
	rs.failed++
	if rs.opts.OnError != nil {
		rs.opts.OnError(snapPath, err)
	}
}

// failFile reports a file once, however many of its blobs fail.
func (rs *restorer) failFile(fj *fileJob, err error) {
	if fj.bad.CompareAndSwap(false, true) {
		rs.fail(fj.snap, err)
	}
}

func (rs *restorer) run(ctx context.Context, sn *snapshot.Snapshot, subpath string) error {
	if sn.Tree == nil {
		return fmt.Errorf("restore: snapshot %v has no tree", sn.ID.Str())
	}
	start, err := snapshot.FindNode(ctx, rs.loader, *sn.Tree, subpath)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if rs.fs, err = openTargetFS(rs.opts.Target); err != nil {
		return err
	}
	defer rs.fs.close()
	root := &dirState{snap: "/", rel: ".", created: true, fd: rs.fs.root, fresh: rs.fs.exactModes}
	rs.ra = rs.loader.ReadAhead(ctx, func(p string, n *snapshot.Node) bool {
		_, descend := rs.selected(p, n)
		return descend
	})
	defer rs.ra.Close() // (again) in case planning failed
	if start.Type == snapshot.NodeDir {
		if start.Subtree == nil {
			return fmt.Errorf("restore: %s: directory node has no subtree", subpath)
		}
		// The top tree not loading is fatal: nothing could be restored.
		if _, err := rs.loader.Tree(ctx, *start.Subtree); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		root.snap = path.Clean("/" + subpath)
	} else {
		root.snap = path.Dir(path.Clean("/" + subpath))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rs.pipe = rs.startPipeline(ctx)
	rs.win = newWindow(0)
	if start.Type == snapshot.NodeDir {
		err = rs.planTree(ctx, *start.Subtree, root)
	} else {
		// A single file: it lands in Target under its own name.
		err = rs.planNode(ctx, start, path.Clean("/"+subpath), root)
	}
	rs.ra.Close()
	if err == nil {
		rs.prog.ScanDone.Store(true)
		err = rs.seal(ctx)
	}
	if err != nil {
		cancel() // the pipeline drops what is queued
	}
	if perr := rs.pipe.wait(); err == nil {
		err = perr
	}
	return err
}

// planTree creates the directory structure below d and records files.
// Only cancellation is fatal; everything else fails single items.
func (rs *restorer) planTree(ctx context.Context, id repo.ID, d *dirState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := rs.ra.Tree(ctx, d.snap, id)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rs.fail(d.snap, err)
		return nil
	}
	if _, ok := rs.onPath[id]; ok {
		rs.fail(d.snap, fmt.Errorf("tree %v contains itself (a cycle): %w", id.Str(), snapshot.ErrInvalidTree))
		return nil
	}
	rs.onPath[id] = struct{}{}
	defer delete(rs.onPath, id)
	for _, n := range t.Nodes {
		if err := rs.planNode(ctx, n, snapshot.JoinPath(d.snap, n.Name), d); err != nil {
			return err
		}
		if rs.win.full() {
			if err := rs.seal(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// testHookAfterPlan, when set, runs between the tree pass and the data
// pass (tests change the target underneath there).
var testHookAfterPlan func(rs *restorer)

func (rs *restorer) selected(p string, n *snapshot.Node) (take, descend bool) {
	if rs.opts.Exclude.Match(p) {
		return false, false
	}
	if rs.opts.Include.Empty() || rs.opts.Include.Match(p) {
		return true, n.Type == snapshot.NodeDir
	}
	// Not included itself, but something below may be: walk through it and
	// create it only if something below gets restored.
	return false, n.Type == snapshot.NodeDir && rs.opts.Include.ChildMayMatch(p)
}

func (rs *restorer) planNode(ctx context.Context, n *snapshot.Node, p string, d *dirState) error {
	// DecodeTree has checked the names; this guards a start node found by
	// path, and anything that builds trees another way.
	if err := snapshot.CheckName(n.Name); err != nil {
		rs.fail(p, err)
		return nil
	}
	take, descend := rs.selected(p, n)
	if !take && !descend {
		return nil
	}
	if n.Type == snapshot.NodeDir {
		if n.Subtree == nil {
			rs.fail(p, errors.New("directory node has no subtree"))
			return nil
		}
		child := d.child(p, n.Name, n)
		if take && !rs.ensureDir(child) {
			return nil
		}
		err := rs.planTree(ctx, *n.Subtree, child)
		if child.created {
			// Its walk is over: its metadata is set once the window
			// planned now (and every earlier one) is written.
			rs.win.dirs = append(rs.win.dirs, child)
		}
		return err
	}
	if !rs.ensureDir(d) {
		return nil
	}
	switch n.Type {
	case snapshot.NodeFile:
		rs.planFile(n, p, d)
		return nil
	case snapshot.NodeSymlink, snapshot.NodeFifo, snapshot.NodeDev, snapshot.NodeCharDev:
	case snapshot.NodeSocket:
		return nil // a socket belongs to a running program; restic skips them too
	default:
		rs.fail(p, fmt.Errorf("cannot restore a node of type %q", n.Type))
		return nil
	}
	if d.bad {
		return nil
	}
	dirfd, err := rs.fs.acquire(d)
	if err != nil {
		d.bad = true // reported once: every further entry would fail the same way
		rs.fail(d.snap, err)
		return nil
	}
	defer rs.fs.release(d)
	shown := rs.fs.display(d.join(n.Name))
	if n.Type == snapshot.NodeSymlink {
		err = symlinkAt(dirfd, n.Name, shown, n)
	} else {
		err = mknodAt(dirfd, n.Name, shown, n)
	}
	if err == nil {
		err = applyAtMeta(dirfd, n.Name, shown, n, d.fresh)
	}
	if err != nil {
		rs.fail(p, err)
	}
	return nil
}

// ensureDir creates d and any parents that were walked through lazily.
func (rs *restorer) ensureDir(d *dirState) bool {
	if d.created {
		return true
	}
	if d.bad || !rs.ensureDir(d.parent) {
		d.bad = true
		return false
	}
	pfd, err := rs.fs.acquire(d.parent)
	existed := false
	if err == nil {
		existed, err = mkdirAt(pfd, d.name, rs.fs.display(d.rel))
		rs.fs.release(d.parent)
	}
	if err != nil {
		d.bad = true
		rs.fail(d.snap, err)
		return false
	}
	d.created = true
	d.fresh = !existed && d.parent.fresh
	rs.prog.Dirs.Add(1)
	rs.prog.SetCurrent(d.snap)
	return true
}

// planFile records where each content blob of a file goes. Files without
// content are created right away; others when their first blob arrives.
// Further names of a hard-linked inode become links to the first one.
func (rs *restorer) planFile(n *snapshot.Node, p string, d *dirState) {
	key := inodeKey{n.DeviceID, n.Inode}
	w := rs.win
	if n.Links > 1 {
		if first, ok := rs.linkFirst[key]; ok {
			// Made once this window is written: first's is no later.
			w.links = append(w.links, hardLink{snap: p, dir: d, name: n.Name, first: first})
			return
		}
	}
	// Look every blob up before registering any, so a file with a missing
	// blob leaves no half-registered writes behind.
	for _, id := range n.Content {
		if w.blobs[id] == nil && !rs.repo.HasBlob(repo.DataBlob, id) {
			rs.fail(p, fmt.Errorf("data blob %v: %w", id.Str(), repo.ErrBlobNotFound))
			return
		}
	}
	fj := &fileJob{snap: p, dir: d, rel: d.join(n.Name), node: n, content: make([]*blobJob, 0, len(n.Content))}
	var off int64
	for _, id := range n.Content {
		b := w.blobs[id]
		if b == nil {
			locs := rs.repo.LookupBlob(repo.DataBlob, id)
			b = &blobJob{id: id, locs: locs, size: locs[0].PlaintextLength()}
			w.blobs[id] = b
			pj := w.packs[locs[0].Pack]
			if pj == nil {
				pj = &packJob{id: locs[0].Pack}
				w.packs[pj.id] = pj
				w.packOrder = append(w.packOrder, pj)
			}
			pj.blobs = append(pj.blobs, b)
		}
		b.targets = append(b.targets, blobTarget{file: fj, off: off})
		fj.content = append(fj.content, b)
		off += int64(b.size)
	}
	fj.size = off
	if off >= directMinSize && !rs.noDirect.Load() {
		fj.direct = &directFile{}
	}
	fj.remaining.Store(int32(len(fj.content)))
	w.files = append(w.files, fj)
	if n.Links > 1 {
		rs.linkFirst[key] = fj
	}
	rs.prog.TotalFiles.Add(1)
	rs.prog.TotalBytes.Add(uint64(off))
	if len(fj.content) == 0 {
		rs.finishEmpty(fj)
	}
}

func (rs *restorer) finishEmpty(fj *fileJob) {
	fd, exact, err := rs.createFile(fj)
	if err != nil {
		rs.failFile(fj, err)
		return
	}
	err = applyFdMeta(fd, rs.fs.display(fj.rel), fj.node, !exact, fj.dir.fresh)
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = &os.PathError{Op: "close", Path: rs.fs.display(fj.rel), Err: cerr}
	}
	if err != nil {
		rs.failFile(fj, err)
		return
	}
	rs.prog.Files.Add(1)
}

// makeLinks recreates hard links once the first name of each inode holds
// its data.
func (rs *restorer) makeLinks(links []hardLink) {
	for _, l := range links {
		if !l.first.created {
			rs.fail(l.snap, fmt.Errorf("hard link to %s: that file was not restored", l.first.snap))
			continue
		}
		if err := rs.link(l); err != nil {
			rs.fail(l.snap, err)
			continue
		}
		rs.prog.Files.Add(1)
	}
}

// finishDirs sets directory metadata after everything inside is written;
// dirs lists children before parents (the order their walks ended).
func (rs *restorer) finishDirs(ctx context.Context, dirs []*dirState) error {
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		fd, err := rs.fs.acquire(d)
		if err == nil {
			err = applyFdMeta(fd, rs.fs.display(d.rel), d.node, true, d.fresh)
			rs.fs.release(d)
		}
		if err != nil {
			rs.fail(d.snap, err)
		}
	}
	return nil
}
