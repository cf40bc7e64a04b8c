package restorer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/cairn-backup/cairn/repo"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// verify re-reads every restored file and checks each blob-sized piece
// against the blob's hash. Mismatches fail the file.
func (rs *restorer) verify(ctx context.Context, files []*fileJob) error {
	// Workers, each with its buffer; a file that fails verification fails
	// alone and the others go on. Hashing is CPU-bound; more readers than
	// cores would only contend.
	work := make(chan *fileJob)
	var g errgroup.Group
	for range min(rs.opts.Workers, runtime.GOMAXPROCS(0)) {
		g.Go(func() error {
			var buf []byte
			for fj := range work {
				if err := rs.verifyFile(fj, &buf); err != nil {
					rs.failFile(fj, fmt.Errorf("verify: %w", err))
				}
			}
			return nil
		})
	}
	defer func() {
		close(work)
		_ = g.Wait() // never fails: failures are per file
	}()
	for _, fj := range files {
		if fj.bad.Load() || !fj.created {
			continue
		}
		select {
		case work <- fj:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (rs *restorer) verifyFile(fj *fileJob, buf *[]byte) error {
	f, err := rs.openForVerify(fj)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is no longer a regular file", f.Name())
	}
	if fi.Size() != fj.size {
		return fmt.Errorf("%s has %d bytes, want %d", f.Name(), fi.Size(), fj.size)
	}
	var off int64
	for _, b := range fj.content {
		if cap(*buf) < int(b.size) {
			*buf = make([]byte, b.size)
		}
		p := (*buf)[:b.size]
		if _, err := io.ReadFull(f, p); err != nil {
			return fmt.Errorf("read %s at %d: %w", f.Name(), off, err)
		}
		if repo.Hash(p) != b.id {
			return fmt.Errorf("%s: %d bytes at offset %d do not match data blob %v", f.Name(), b.size, off, b.id.Str())
		}
		off += int64(b.size)
	}
	return nil
}

// openForVerify avoids updating the atime that restore just set; O_NOATIME
// needs ownership (or root), so fall back without it.
func (rs *restorer) openForVerify(fj *fileJob) (*os.File, error) {
	fd, err := rs.reopen(fj, unix.O_RDONLY|unix.O_NOATIME)
	if errors.Is(err, unix.EPERM) {
		fd, err = rs.reopen(fj, unix.O_RDONLY)
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), rs.fs.display(fj.rel)), nil
}
