package cache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

var (
	// errMismatch: the backend's file does not match its name; it is not
	// cached and the caller reads the backend directly.
	errMismatch = errors.New("content does not match its name")
	errNoWrite  = errors.New("cache is not written to")
)

// writeErr is a failure to write the cache itself (not to read the backend).
type writeErr struct{ err error }

func (e writeErr) Error() string { return e.err.Error() }
func (e writeErr) Unwrap() error { return e.err }

// staleTemp is how old a temp file must be before it counts as left behind
// by a process that died (a live one is still writing it).
const staleTemp = time.Hour

func (c *Backend) writesOff() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.noWrite
}

// ensure makes p a verified copy of h, fetching it at most once even when
// many goroutines ask at once.
func (c *Backend) ensure(ctx context.Context, h repo.Handle, p string) error {
	c.mu.Lock()
	if c.verified[p] {
		c.mu.Unlock()
		if _, err := os.Stat(p); err == nil {
			return nil
		}
		c.mu.Lock() // evicted by another process: fetch again
		delete(c.verified, p)
	}
	if f, ok := c.inflight[p]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f := &fetch{done: make(chan struct{})}
	c.inflight[p] = f
	c.mu.Unlock()

	f.err = c.fill(ctx, h, p)
	c.mu.Lock()
	delete(c.inflight, p)
	if f.err == nil {
		c.verified[p] = true
	}
	c.mu.Unlock()
	close(f.done)
	return f.err
}

// fill uses a copy already on disk (from an earlier run or another
// process) once it matches its name, and otherwise fetches the whole file.
func (c *Backend) fill(ctx context.Context, h repo.Handle, p string) error {
	switch exists, ok := verifyFile(p, h.Name); {
	case ok:
		if h.Type == repo.PackFile {
			now := time.Now()
			_ = os.Chtimes(p, now, now) // recently used, see evictLRU
		}
		return nil
	case exists:
		c.warnf("cached %v did not match its name (damaged); fetching it again", h)
		c.drop(p)
	}
	if c.writesOff() {
		return errNoWrite
	}
	rc, err := c.Backend.Load(ctx, h, 0, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	err = c.store(h, p, rc)
	var we writeErr
	if errors.As(err, &we) {
		c.writeFailed(we.err)
	}
	return err
}

// verifyFile reports whether p exists and whether its SHA-256 is name.
func verifyFile(p, name string) (exists, ok bool) {
	f, err := os.Open(p)
	if err != nil {
		return false, false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return true, false
	}
	var id repo.ID
	h.Sum(id[:0])
	return true, id.String() == name
}

// store copies rd into the cache as p, through a unique temp file renamed
// into place only when the content matches h's name.
func (c *Backend) store(h repo.Handle, p string, rd io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return writeErr{err}
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	sum := sha256.New()
	buf := make([]byte, 256<<10)
	var size int64
	for {
		n, rerr := rd.Read(buf)
		if n > 0 {
			sum.Write(buf[:n])
			if _, err := tmp.Write(buf[:n]); err != nil {
				tmp.Close()
				return writeErr{err}
			}
			size += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			tmp.Close()
			return fmt.Errorf("read %v: %w", h, rerr)
		}
	}
	if err := tmp.Close(); err != nil {
		return writeErr{err}
	}
	var id repo.ID
	sum.Sum(id[:0])
	if id.String() != h.Name {
		return fmt.Errorf("%v: %w", h, errMismatch)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return writeErr{err}
	}
	c.mu.Lock()
	c.verified[p] = true
	c.mu.Unlock()
	if h.Type == repo.PackFile {
		c.mu.Lock()
		c.packBytes += size
		over := c.packBytes > c.opts.MaxSize
		c.mu.Unlock()
		if over {
			c.evictLRU()
		}
	}
	return nil
}

// drop removes a cache entry and forgets that it was verified.
func (c *Backend) drop(p string) {
	fi, err := os.Stat(p)
	if err != nil {
		return
	}
	if os.Remove(p) != nil {
		return
	}
	c.mu.Lock()
	delete(c.verified, p)
	if filepath.Base(filepath.Dir(p)) == subdirs[repo.PackFile] {
		c.packBytes -= fi.Size()
	}
	c.mu.Unlock()
}

// dropUnlisted removes the entries of dir that keep rejects, and temp files
// that processes which died left behind.
func (c *Backend) dropUnlisted(dir string, keep func(name string) bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
				os.Remove(filepath.Join(dir, name))
			}
			continue
		}
		if !keep(name) {
			c.drop(filepath.Join(dir, name))
		}
	}
}

// removeStale removes old temp files and returns the size of the cached
// packs.
func (c *Backend) removeStale() int64 {
	var packBytes int64
	for t, sub := range subdirs {
		dir := filepath.Join(c.dir, sub)
		c.dropUnlisted(dir, func(string) bool { return true })
		if t != repo.PackFile {
			continue
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
				packBytes += fi.Size()
			}
		}
	}
	return packBytes
}

// evictLRU removes the least recently used packs until they fit in nine
// tenths of MaxSize, so that eviction does not run for every new pack.
func (c *Backend) evictLRU() {
	c.mu.Lock()
	over := c.packBytes > c.opts.MaxSize
	c.mu.Unlock()
	if !over {
		return
	}
	dir := filepath.Join(c.dir, subdirs[repo.PackFile])
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type entry struct {
		name  string
		size  int64
		mtime time.Time
	}
	var all []entry
	var total int64
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		all = append(all, entry{e.Name(), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	slices.SortFunc(all, func(a, b entry) int { return a.mtime.Compare(b.mtime) })
	limit := c.opts.MaxSize / 10 * 9
	for _, e := range all {
		if total <= limit {
			break
		}
		p := filepath.Join(dir, e.name)
		if os.Remove(p) == nil {
			total -= e.size
			c.mu.Lock()
			delete(c.verified, p)
			c.mu.Unlock()
		}
	}
	c.mu.Lock()
	c.packBytes = total
	c.mu.Unlock()
}

// IsRepoDirName reports whether name is a repository ID (64 lowercase hex
// digits): the only directories in a cache base the cache ever removes.
// The base may hold other things (cairn's test tools live in
// ~/.cache/cairn/bin).
func IsRepoDirName(name string) bool {
	if len(name) != 64 {
		return false
	}
	for _, r := range name {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// Old lists the repository caches in base not used for maxAge.
func Old(base string, maxAge time.Duration) ([]string, error) {
	entries, err := os.ReadDir(base)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var old []string
	for _, e := range entries {
		if !e.IsDir() || !IsRepoDirName(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > maxAge {
			old = append(old, filepath.Join(base, e.Name()))
		}
	}
	return old, nil
}

// Remove deletes repository caches listed by Old; it refuses any path
// whose last element is not a repository ID.
func Remove(dirs []string) error {
	for _, d := range dirs {
		if !IsRepoDirName(filepath.Base(d)) {
			return fmt.Errorf("refusing to remove %s: not a repository cache", d)
		}
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("remove old cache: %w", err)
		}
	}
	return nil
}

// DefaultDir is the base cache directory: $XDG_CACHE_HOME/cairn, else
// $HOME/.cache/cairn; "" when neither is set.
func DefaultDir(getenv func(string) string) string {
	if d := getenv("XDG_CACHE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "cairn")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".cache", "cairn")
	}
	return ""
}
