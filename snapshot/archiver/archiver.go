// Package archiver writes backups: it reads files and directories (or
// streams and virtual trees), chunks and stores their data, and saves the
// trees and the snapshot.
package archiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/match"
)

// ArchiveOptions control a backup.
type ArchiveOptions struct {
	Excludes        *match.Matcher // paths to skip (absolute, slash-separated paths are matched)
	ExcludePatterns []string       // recorded in the snapshot's "excludes"
	Parent          *snapshot.Snapshot
	Tags            []string
	Hostname        string    // "" = os.Hostname()
	Time            time.Time // zero = now
	ProgramVersion  string
	Progress        *snapshot.Progress // may be nil
	// OnError is told about unreadable files and directories; they are left
	// out and the backup goes on. It is never called concurrently.
	OnError func(path string, err error)
	// OnChanged is told about files that changed while they were read
	// (the error wraps ErrFileChanged); they are stored as read. It is
	// never called concurrently, nor with OnError.
	OnChanged func(path string, err error)
	Workers   int // file readers; 0 = runtime.GOMAXPROCS(0)
	// NoScan leaves Progress's totals unset: nothing shows them, and
	// counting them ahead costs an lstat of every file again.
	NoScan bool
	// NoXattrs skips reading extended attributes.
	NoXattrs bool
}

// Backup archives paths (made absolute and cleaned) into one snapshot: it
// writes data and tree blobs, flushes the repository (packs, then index)
// and saves the snapshot file. It returns the saved snapshot and the number
// of files and directories that could not be read.
func Backup(ctx context.Context, r *repo.Repository, paths []string, opts ArchiveOptions) (*snapshot.Snapshot, int, error) {
	a := NewArchiver(r, opts)
	sn, err := a.BackupPaths(ctx, paths)
	return sn, a.ErrorCount(), err
}

// Archiver stores files, streams and trees in a repository and finally a
// snapshot. Its methods are safe for concurrent use. Backup uses it for
// real paths; other code can compose a snapshot from virtual content
// (SaveReader, SaveTree) and real directories (SaveDir, SavePath).
type Archiver struct {
	r        *repo.Repository
	opts     ArchiveOptions
	pol      chunk.Pol
	progress *snapshot.Progress
	loader   *snapshot.TreeLoader
	start    time.Time
	workers  int
	blobWork int

	bufs *bufPool
	// xattrsFromParent: the parent snapshot's nodes hold every extended
	// attribute (cairn wrote it, and cairn always reads them), so an
	// inode unchanged since is not asked again.
	xattrsFromParent bool

	errMu        sync.Mutex
	errCount     int
	changedCount int

	bytesRead atomic.Uint64
	st        archStats
}

// archStats are the Summary counters, updated from many goroutines.
type archStats struct {
	filesNew, filesChanged, filesUnmodified atomic.Uint64
	dirsNew, dirsChanged, dirsUnmodified    atomic.Uint64
	dataBlobs, treeBlobs                    atomic.Int64
	treesReused                             atomic.Int64 // taken from the parent unbuilt
	dataAdded, dataAddedPacked              atomic.Uint64
	files, bytes                            atomic.Uint64
}

// NewArchiver prepares an archiver; the backup's start time is now.
func NewArchiver(r *repo.Repository, opts ArchiveOptions) *Archiver {
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	blobWork := runtime.GOMAXPROCS(0)
	// Enough buffers for every reader to fill one while every blob
	// worker stores one, plus one so a reader rarely waits.
	nbuf := workers + blobWork + 1
	a := &Archiver{
		r:        r,
		opts:     opts,
		pol:      r.Config().ChunkerPolynomial,
		progress: opts.Progress,
		loader:   snapshot.NewTreeLoader(r, 8), // each parent tree is read once; the read-ahead holds those ahead
		start:    repo.Now(),
		workers:  workers,
		blobWork: blobWork,
		bufs:     newBufPool(nbuf),
	}
	if a.progress == nil {
		a.progress = &snapshot.Progress{}
	}
	if p := opts.Parent; p != nil && strings.HasPrefix(p.ProgramVersion, "cairn ") {
		a.xattrsFromParent = true
	}
	// Buffers still mapped when the archiver is dropped (Finish not called)
	// are unmapped then; nothing else can hold them by that time.
	runtime.AddCleanup(a, func(p *bufPool) { p.release() }, a.bufs)
	return a
}

// ErrorCount is the number of items that could not be read so far.
func (a *Archiver) ErrorCount() int {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	return a.errCount
}

// BytesRead is the number of bytes read from files so far; files unchanged
// since the parent snapshot are not read.
func (a *Archiver) BytesRead() uint64 { return a.bytesRead.Load() }

// ChangedCount is the number of files so far that changed while they were
// read and were stored as read.
func (a *Archiver) ChangedCount() int {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	return a.changedCount
}

func (a *Archiver) reportChanged(path string, err error) {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	a.changedCount++
	if a.opts.OnChanged != nil {
		a.opts.OnChanged(path, err)
	}
}

func (a *Archiver) reportError(path string, err error) {
	a.progress.Errors.Add(1)
	a.errMu.Lock()
	defer a.errMu.Unlock()
	a.errCount++
	if a.opts.OnError != nil {
		a.opts.OnError(path, err)
	}
}

func (a *Archiver) getBuf() []byte  { return a.bufs.get() }
func (a *Archiver) putBuf(b []byte) { a.bufs.put(b) }

// saveBlob stores a blob and counts it when it is new.
func (a *Archiver) saveBlob(ctx context.Context, t repo.BlobType, data []byte, id repo.ID) (repo.ID, error) {
	id, known, stored, err := a.r.SaveBlob(ctx, t, data, id)
	if err != nil {
		return id, fmt.Errorf("save %v blob: %w", t, err)
	}
	if !known {
		if t == repo.TreeBlob {
			a.st.treeBlobs.Add(1)
		} else {
			a.st.dataBlobs.Add(1)
		}
		a.st.dataAdded.Add(uint64(len(data)))
		a.st.dataAddedPacked.Add(uint64(stored))
	}
	return id, nil
}

// SaveTree sorts t's nodes, stores the tree and returns its ID.
func (a *Archiver) SaveTree(ctx context.Context, t *snapshot.Tree) (repo.ID, error) {
	t.Sort()
	buf, err := t.Encode()
	if err != nil {
		return repo.ID{}, err
	}
	return a.saveBlob(ctx, repo.TreeBlob, buf, repo.ID{})
}

// SaveReader chunks rd and stores its chunks as data blobs, returning the
// content list for a file node (empty, not nil, for an empty stream) and
// the stream's size.
func (a *Archiver) SaveReader(ctx context.Context, rd io.Reader) ([]repo.ID, uint64, error) {
	buf := a.getBuf()
	defer a.putBuf(buf)
	ch := chunk.New(rd, a.pol)
	content := []repo.ID{}
	var size uint64
	for {
		data, err := ch.Next(buf)
		if err == io.EOF {
			return content, size, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read stream: %w", err)
		}
		id, err := a.saveBlob(ctx, repo.DataBlob, data, repo.Hash(data))
		if err != nil {
			return nil, 0, err
		}
		content = append(content, id)
		size += uint64(len(data))
	}
}

// SaveDir archives the directory absPath and returns its node with Subtree
// set. parentTree is the directory's tree in a parent snapshot (nil =
// none); unchanged files found there are not read again.
func (a *Archiver) SaveDir(ctx context.Context, absPath string, parentTree *repo.ID) (*snapshot.Node, error) {
	fi, err := os.Lstat(absPath)
	if err != nil {
		return nil, fmt.Errorf("save %s: %w", absPath, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("save %s: not a directory", absPath)
	}
	var old *snapshot.Node
	if parentTree != nil {
		old = &snapshot.Node{Type: snapshot.NodeDir, Subtree: parentTree}
	}
	return a.savePath(ctx, absPath, fi, old)
}

// SavePath archives whatever is at absPath (symlinks are not followed) and
// returns its node. old is its node in a parent snapshot, or nil. Items
// below absPath that cannot be read are reported through OnError and left
// out; if absPath itself cannot be read, an error is returned.
func (a *Archiver) SavePath(ctx context.Context, absPath string, old *snapshot.Node) (*snapshot.Node, error) {
	fi, err := os.Lstat(absPath)
	if err != nil {
		return nil, fmt.Errorf("save %s: %w", absPath, err)
	}
	return a.savePath(ctx, absPath, fi, old)
}

func (a *Archiver) savePath(ctx context.Context, absPath string, fi os.FileInfo, old *snapshot.Node) (*snapshot.Node, error) {
	rn := a.newRun(ctx)
	var res *snapshot.Node
	rn.entry(absPath, fi, old, func(n *snapshot.Node) { res = n }, false)
	if err := rn.wait(); err != nil {
		return nil, err
	}
	if res == nil {
		return nil, fmt.Errorf("save %s: could not be read (error reported)", absPath)
	}
	return res, nil
}

// BackupPaths archives paths into one root tree holding their full
// absolute paths, then calls Finish. Paths that do not exist are reported
// and left out (of the snapshot's paths too); if none exists, it fails.
func (a *Archiver) BackupPaths(ctx context.Context, paths []string) (*snapshot.Snapshot, error) {
	targets, err := cleanTargets(paths)
	if err != nil {
		return nil, err
	}
	var ok []string
	var firstErr error
	for _, p := range targets {
		if _, err := os.Lstat(p); err != nil {
			a.reportError(p, err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		ok = append(ok, p)
	}
	if len(ok) == 0 {
		return nil, fmt.Errorf("backup: no path to back up exists: %w", firstErr)
	}

	scanCtx, stopScan := context.WithCancel(ctx)
	var scanDone sync.WaitGroup
	if a.opts.Progress != nil && !a.opts.NoScan {
		scanDone.Go(func() { a.scan(scanCtx, ok) })
	}
	var oldRoot *repo.ID
	if a.opts.Parent != nil {
		oldRoot = a.opts.Parent.Tree
	}
	rn := a.newRun(ctx)
	var root repo.ID
	if err = rn.walkTargets(buildTrie(ok), oldRoot, func(id repo.ID) { root = id }); err != nil {
		err = fmt.Errorf("backup: %w", err)
	}
	if werr := rn.wait(); werr != nil {
		err = werr
	}
	stopScan()
	scanDone.Wait()
	if err != nil {
		return nil, err
	}
	if p := a.opts.Progress; p != nil && !p.ScanDone.Load() {
		// The backup outran the scan: what it processed is the total.
		p.TotalFiles.Store(p.Files.Load())
		p.TotalBytes.Store(p.Bytes.Load())
		p.ScanDone.Store(true)
	}
	return a.Finish(ctx, root, ok)
}

// cleanTargets makes paths absolute and clean, drops duplicates and sorts
// them (restic records them sorted).
func cleanTargets(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("backup: no paths given")
	}
	var out []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("backup: %s: %w", p, err)
		}
		out = append(out, filepath.Clean(abs))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Finish flushes the repository and saves the snapshot of tree with the
// given paths and the archiver's summary.
func (a *Archiver) Finish(ctx context.Context, tree repo.ID, paths []string) (*snapshot.Snapshot, error) {
	a.bufs.release() // the files are read; give the memory back
	if err := a.r.Flush(ctx); err != nil {
		return nil, fmt.Errorf("backup: flush repository: %w", err)
	}
	host := a.opts.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	username, _ := repo.CurrentUser()
	tm := a.opts.Time
	if tm.IsZero() {
		tm = a.start
	}
	sn := &snapshot.Snapshot{
		Time:           tm,
		Tree:           &tree,
		Paths:          paths,
		Hostname:       host,
		Username:       username,
		UID:            uint32(os.Getuid()),
		GID:            uint32(os.Getgid()),
		Excludes:       a.opts.ExcludePatterns,
		Tags:           a.opts.Tags,
		ProgramVersion: a.opts.ProgramVersion,
		Summary:        a.summary(),
	}
	if p := a.opts.Parent; p != nil && !p.ID.IsNull() {
		id := p.ID
		sn.Parent = &id
	}
	if _, err := snapshot.SaveSnapshot(ctx, a.r, sn); err != nil {
		return nil, err
	}
	return sn, nil
}

func (a *Archiver) summary() *snapshot.Summary {
	s := &a.st
	return &snapshot.Summary{
		BackupStart:         a.start,
		BackupEnd:           repo.Now(),
		FilesNew:            s.filesNew.Load(),
		FilesChanged:        s.filesChanged.Load(),
		FilesUnmodified:     s.filesUnmodified.Load(),
		DirsNew:             s.dirsNew.Load(),
		DirsChanged:         s.dirsChanged.Load(),
		DirsUnmodified:      s.dirsUnmodified.Load(),
		DataBlobs:           int(s.dataBlobs.Load()),
		TreeBlobs:           int(s.treeBlobs.Load()),
		DataAdded:           s.dataAdded.Load(),
		DataAddedPacked:     s.dataAddedPacked.Load(),
		TotalFilesProcessed: s.files.Load(),
		TotalBytesProcessed: s.bytes.Load(),
	}
}
