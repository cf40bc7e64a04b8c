package archiver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sys/unix"
)

// openFile and openDir open what the archiver reads; tests swap them to
// inject errors. Files are read through the bare descriptor: an os.File
// costs a small file as many system calls again (poller registration,
// non-blocking mode, a second read for the end).
var (
	openFile = func(path string) (int, error) {
		// O_NONBLOCK: should the file have been replaced by a FIFO since
		// lstat, opening must not hang (the type is checked after open).
		return openFdNoAtime(path, unix.O_NOFOLLOW|unix.O_NONBLOCK)
	}
	openDir = func(path string) (*os.File, error) {
		return openNoAtime(path, syscall.O_DIRECTORY)
	}
)

// openFdNoAtime is openNoAtime for a bare descriptor.
func openFdNoAtime(path string, flags int) (int, error) {
	flags |= unix.O_RDONLY | unix.O_CLOEXEC
	fd, err := retryEINTR(func() (int, error) { return unix.Open(path, flags|unix.O_NOATIME, 0) })
	if err == unix.EPERM {
		fd, err = retryEINTR(func() (int, error) { return unix.Open(path, flags, 0) })
	}
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}

func fstat(fd int, st *unix.Stat_t) error {
	_, err := retryEINTR(func() (int, error) { return 0, unix.Fstat(fd, st) })
	return err
}

// openNoAtime opens read-only without updating the access time, so a
// backup does not change what the next backup sees. O_NOATIME is allowed
// only to the owner (or root); others fall back to a plain open.
func openNoAtime(path string, flags int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|flags|syscall.O_NOATIME, 0)
	if errors.Is(err, syscall.EPERM) {
		f, err = os.OpenFile(path, os.O_RDONLY|flags, 0)
	}
	return f, err
}

type archFile struct {
	path string
	node *snapshot.Node
	old  *snapshot.Node
	done func(*snapshot.Node)
	// listed is the file's state when the walk lstat'ed it, nil if
	// unknown; xattrs: its extended attributes are read from the open
	// descriptor (no second path lookup).
	listed *fileState
	xattrs bool
	// changed is set by the reader, before the file is finished, when the
	// file changed while it was read (wraps ErrFileChanged).
	changed error
}

// ErrFileChanged marks a file that changed while it was read: what was
// stored may mix old and new content.
var ErrFileChanged = errors.New("changed while being read")

// afterFirstRead, when set by tests, runs after a file's first chunk (or
// whole small file) is read, to change the file mid-read.
var afterFirstRead func(path string)

// archFileState tracks a large file whose chunks are being stored by blob
// workers; the last one to finish completes the file.
type archFileState struct {
	job     *archFile
	mu      sync.Mutex
	content []repo.ID
	size    uint64
	err     error
	pending atomic.Int64 // chunks in flight, +1 while the file is being read
}

func (fs *archFileState) setErr(err error) {
	fs.mu.Lock()
	if fs.err == nil {
		fs.err = err
	}
	fs.mu.Unlock()
}

type archChunk struct {
	fs   *archFileState
	idx  int
	data []byte
	buf  []byte // to return to the pool
}

var chunkers = sync.Pool{New: func() any { return chunk.New(nil, 0) }}

func (rn *archRun) fileWorker() {
	for job := range rn.files {
		if rn.ctx.Err() != nil {
			continue // drain
		}
		rn.saveFile(job)
	}
}

func (rn *archRun) blobWorker() {
	for cj := range rn.chunks {
		if rn.ctx.Err() == nil {
			id, err := rn.a.saveBlob(rn.ctx, repo.DataBlob, cj.data, repo.Hash(cj.data))
			if err != nil {
				rn.fail(fmt.Errorf("%s: %w", cj.fs.job.path, err))
			} else {
				cj.fs.mu.Lock()
				cj.fs.content[cj.idx] = id
				cj.fs.mu.Unlock()
			}
		}
		rn.a.putBuf(cj.buf)
		rn.release(cj.fs)
	}
}

func (rn *archRun) release(fs *archFileState) {
	if fs.pending.Add(-1) == 0 {
		rn.finishFile(fs.job, fs.content, fs.size, fs.err)
	}
}

// saveFile reads one regular file. Files smaller than the chunker's minimum
// size are one chunk: they are read whole and stored right here; larger
// ones are chunked, their chunks stored by the blob workers.
//
// A small file's state as listed serves as its state before reading: one
// fstat after reading tells whether it is still that regular file, unchanged.
// (Reading first is safe: the open does not follow links or block, and at
// most the chunker's minimum size is read before the type is known.)
func (rn *archRun) saveFile(job *archFile) {
	a := rn.a
	a.progress.SetCurrent(job.path)
	fd, err := openFile(job.path)
	if err != nil {
		rn.finishFile(job, nil, 0, err)
		return
	}
	if job.node.Size >= chunk.MinSize || job.listed == nil {
		var st unix.Stat_t
		if err := fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			if err == nil {
				err = errNotRegular
			}
			unix.Close(fd)
			rn.finishFile(job, nil, 0, err)
			return
		}
		before := stateOf(&st)
		if job.node.Size >= chunk.MinSize {
			rn.readXattrs(job, fd)
			f := os.NewFile(uintptr(fd), job.path)
			defer f.Close()
			rn.chunkFile(job, f, fd, &before)
			return
		}
		job.listed = &before
	}
	buf := a.getBuf()
	defer a.putBuf(buf)
	n, err := readSmall(fd, buf[:chunk.MinSize], job.listed.size)
	a.noteRead(n)
	if afterFirstRead != nil {
		afterFirstRead(job.path)
	}
	var after unix.Stat_t
	if err == nil {
		if err = fstat(fd, &after); err == nil && after.Mode&unix.S_IFMT != unix.S_IFREG {
			err = errNotRegular
		}
	} else {
		err = &os.PathError{Op: "read", Path: job.path, Err: err}
	}
	if err != nil {
		unix.Close(fd)
		rn.finishFile(job, nil, 0, err)
		return
	}
	rn.readXattrs(job, fd)
	if n < chunk.MinSize {
		job.changed = job.listed.changed(stateOf(&after), uint64(n))
		unix.Close(fd)
		content := []repo.ID{}
		if n > 0 {
			id, err := a.saveBlob(rn.ctx, repo.DataBlob, buf[:n], repo.Hash(buf[:n]))
			if err != nil {
				rn.fail(fmt.Errorf("%s: %w", job.path, err))
				return
			}
			content = append(content, id)
		}
		rn.finishFile(job, content, uint64(n), nil)
		return
	}
	// It grew: chunk it, starting with what was read.
	f := os.NewFile(uintptr(fd), job.path)
	defer f.Close()
	rn.chunkFile(job, io.MultiReader(bytes.NewReader(buf[:n]), f), fd, job.listed)
}

var errNotRegular = errors.New("no longer a regular file")

// readXattrs reads the extended attributes of the file open as fd when
// the walk left them to the reader.
func (rn *archRun) readXattrs(job *archFile, fd int) {
	if job.xattrs {
		job.node.ExtendedAttributes = readXattrsFd(fd)
	}
}

// readSmall reads into buf until it is full, the end of the file, or size
// bytes (what fstat said: no read to find the end; a file that grew
// meanwhile has another size after reading and is reported as changed).
func readSmall(fd int, buf []byte, size int64) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := retryEINTR(func() (int, error) { return unix.Read(fd, buf[n:]) })
		if err != nil {
			return n, err
		}
		if m <= 0 {
			break
		}
		n += m
		if int64(n) == size {
			break
		}
	}
	return n, nil
}

// fileState is what tells whether a file changed: its identity, size and
// times.
type fileState struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
}

func stateOf(st *unix.Stat_t) fileState {
	return fileState{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
}

// listedState is the state of an lstat result, nil when the file info
// does not carry one.
func listedState(fi os.FileInfo) *fileState {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return &fileState{dev: st.Dev, ino: st.Ino, size: st.Size,
		mtime: unix.Timespec(st.Mtim), ctime: unix.Timespec(st.Ctim)}
}

// changedWhileRead compares f's state after reading (fstat on the same
// descriptor) with before, its state when opened or listed, and with the
// number of bytes read. It returns an error wrapping ErrFileChanged, or nil.
//
// The node keeps the metadata seen before reading: the change that was
// noticed left a newer ctime or another size, so the next backup does
// not take the torn copy for unchanged and reads the file again. A change
// within the file system's timestamp granularity that leaves the size as
// it was cannot be seen here.
func changedWhileRead(fd int, before *fileState, read uint64) error {
	var after unix.Stat_t
	if err := fstat(fd, &after); err != nil {
		return fmt.Errorf("%w: stat after reading: %v", ErrFileChanged, err)
	}
	return before.changed(stateOf(&after), read)
}

func (before *fileState) changed(after fileState, read uint64) error {
	var what []string
	switch {
	case after.dev != before.dev || after.ino != before.ino:
		what = append(what, "replaced by another file since it was listed")
	case after.size != before.size:
		what = append(what, fmt.Sprintf("size %d -> %d bytes", before.size, after.size))
	case uint64(before.size) != read && before.size != 0:
		// (Files in /proc and /sys say 0 bytes and hold more.)
		what = append(what, fmt.Sprintf("%d bytes read of %d", read, before.size))
	}
	if after.mtime != before.mtime {
		what = append(what, "modification time changed")
	}
	if after.ctime != before.ctime {
		what = append(what, "status change time changed")
	}
	if len(what) == 0 {
		return nil
	}
	return fmt.Errorf("%w (%s); stored the %d bytes read, the next backup reads it again", ErrFileChanged, strings.Join(what, ", "), read)
}

func (a *Archiver) noteRead(n int) {
	a.bytesRead.Add(uint64(n))
	a.progress.Bytes.Add(uint64(n))
}

// chunkFile cuts rd into chunks and queues them for the blob workers; the
// number of chunk buffers bounds how far reading runs ahead.
// fd and before are the open file and its state when opened, to notice a
// change once everything is read.
func (rn *archRun) chunkFile(job *archFile, rd io.Reader, fd int, before *fileState) {
	a := rn.a
	ch := chunkers.Get().(*chunk.Chunker)
	ch.Reset(rd, a.pol)
	defer func() {
		ch.Reset(nil, a.pol) // drop the file reference
		chunkers.Put(ch)
	}()
	fs := &archFileState{job: job, content: []repo.ID{}}
	fs.pending.Store(1)
	for idx := 0; rn.ctx.Err() == nil; idx++ {
		buf := a.getBuf()
		data, err := ch.Next(buf)
		if err != nil {
			a.putBuf(buf)
			if err != io.EOF {
				fs.setErr(err)
			}
			break
		}
		a.noteRead(len(data))
		fs.mu.Lock()
		fs.content = append(fs.content, repo.ID{})
		fs.size += uint64(len(data))
		fs.mu.Unlock()
		fs.pending.Add(1)
		rn.chunks <- archChunk{fs: fs, idx: idx, data: data, buf: buf}
		if idx == 0 && afterFirstRead != nil {
			afterFirstRead(job.path)
		}
	}
	fs.mu.Lock()
	read, failed := fs.size, fs.err != nil
	fs.mu.Unlock()
	if !failed && rn.ctx.Err() == nil {
		job.changed = changedWhileRead(fd, before, read)
	}
	rn.release(fs)
}

// finishFile completes a file: its node goes into the tree, or it is
// reported and left out when it could not be read.
func (rn *archRun) finishFile(job *archFile, content []repo.ID, size uint64, err error) {
	a := rn.a
	if rn.ctx.Err() != nil {
		return
	}
	if err != nil {
		a.reportError(job.path, err)
		job.done(nil)
		return
	}
	if job.changed != nil {
		a.reportChanged(job.path, job.changed)
	}
	job.node.Content, job.node.Size = content, size
	if job.old != nil {
		a.st.filesChanged.Add(1)
	} else {
		a.st.filesNew.Add(1)
	}
	a.st.files.Add(1)
	a.st.bytes.Add(size)
	a.progress.Files.Add(1)
	job.done(job.node)
}
