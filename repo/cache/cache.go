// Package cache keeps local copies of the repository files that commands
// read again and again: index files, snapshot files and the packs that hold
// tree blobs. It is a repo.Backend wrapper, so the Repository above it reads
// as before; over a network it saves a round trip per tree.
//
// Layout: <base>/<repository ID>/{index,snapshots,data}/<file ID>, with a
// CACHEDIR.TAG in each repository's directory. Every file is named by the
// SHA-256 of its content, so an entry is checked against its name before
// its first use in a process; one that does not match is dropped and
// fetched again. Files are written to unique temp names and renamed, so
// several processes can share one cache directory.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// DefaultMaxSize bounds the tree packs kept for one repository.
const DefaultMaxSize = 4 << 30

// OldAge is how long a repository's cache may go unused before it counts as
// old (see Old).
const OldAge = 30 * 24 * time.Hour

// Options configure a cache.
type Options struct {
	// Dir is the base directory; each repository gets Dir/<repository ID>.
	Dir string
	// MaxSize bounds the bytes of tree packs kept per repository (least
	// recently used go first); 0 means DefaultMaxSize.
	MaxSize int64
	// Warn is told, in one line, about a cache that cannot be used or an
	// entry that was damaged; the command goes on either way.
	Warn func(msg string)
}

// Backend is a repo.Backend that serves index files, snapshot files and
// tree packs from a local directory. Until Attach it passes everything
// through to the wrapped backend.
type Backend struct {
	repo.Backend
	opts Options
	dir  string // the repository's cache directory; "" for no cache

	mu        sync.Mutex
	verified  map[string]bool // paths checked against their names by this process
	treePacks map[repo.ID]struct{}
	inflight  map[string]*fetch
	packBytes int64 // approximate size of data/
	noWrite   bool  // a write failed: serve what is there, add nothing
	// early holds the names of complete listings made before Attach
	// (prefetched while the key was derived); Attach drops what they
	// lack, as List does afterwards.
	early map[repo.FileType]map[string]bool
}

// fetch lets concurrent loads of one file share a single download.
type fetch struct {
	done chan struct{}
	err  error
}

// Wrap returns be with a cache that is used once Attach names the
// repository.
func Wrap(be repo.Backend, opts Options) *Backend {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	return &Backend{Backend: be, opts: opts, verified: map[string]bool{},
		treePacks: map[repo.ID]struct{}{}, inflight: map[string]*fetch{}}
}

var subdirs = map[repo.FileType]string{repo.IndexFile: "index", repo.SnapshotFile: "snapshots", repo.PackFile: "data"}

// Attach starts caching for the repository with the given ID (its config
// ID, 64 hex digits). Call it once, before the backend is used
// concurrently. A cache directory that cannot be made or written is not an
// error: it warns once and the backend goes on without a cache.
func (c *Backend) Attach(repoID string) {
	if !IsRepoDirName(repoID) {
		c.warnf("repository ID %q is not 64 hex digits; going on without a cache", repoID)
		return
	}
	dir := filepath.Join(c.opts.Dir, repoID)
	if err := prepareDir(dir); err != nil {
		c.warnf("cache directory %s is not usable (%v); going on without a cache", c.opts.Dir, err)
		return
	}
	c.dir = dir
	now := time.Now()
	_ = os.Chtimes(dir, now, now) // marks the cache as used, see Old
	c.packBytes = c.removeStale()
	c.evictLRU()
	c.mu.Lock()
	early := c.early
	c.early = nil
	c.mu.Unlock()
	for t, seen := range early {
		c.dropUnlisted(filepath.Join(dir, subdirs[t]), func(name string) bool { return seen[name] })
	}
}

// Dir is the repository's cache directory, "" when there is none.
func (c *Backend) Dir() string { return c.dir }

func prepareDir(dir string) error {
	for _, sub := range subdirs {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	tag := filepath.Join(dir, "CACHEDIR.TAG")
	if _, err := os.Stat(tag); err != nil {
		if err := writeAtomic(tag, []byte(cachedirTag)); err != nil {
			return err
		}
	}
	// A directory that exists but is read-only shows only when written.
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

const cachedirTag = "Signature: 8a477f597d28d172789f06886806bc55\n" +
	"# This file is a cache directory tag created by cairn.\n" +
	"# For information about cache directory tags, see https://bford.info/cachedir/\n"

func writeAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func (c *Backend) warnf(format string, args ...any) {
	if c.opts.Warn != nil {
		c.opts.Warn(fmt.Sprintf(format, args...))
	}
}

// writeFailed stops adding to the cache after the first failed write (a
// full disk, a directory made read-only meanwhile), with one warning.
func (c *Backend) writeFailed(err error) {
	c.mu.Lock()
	first := !c.noWrite
	c.noWrite = true
	c.mu.Unlock()
	if first {
		c.warnf("cannot write to cache directory %s (%v); going on without adding to it", c.dir, err)
	}
}

// path is where h is cached, "" when h is not a cached type.
func (c *Backend) path(h repo.Handle) string {
	sub, ok := subdirs[h.Type]
	if !ok || c.dir == "" {
		return ""
	}
	if _, err := repo.ParseID(h.Name); err != nil {
		return ""
	}
	return filepath.Join(c.dir, sub, h.Name)
}

// keeps is where h is cached, "" when it is not: index and snapshot files
// always, packs when they hold trees.
func (c *Backend) keeps(h repo.Handle) string {
	p := c.path(h)
	if p == "" || h.Type != repo.PackFile {
		return p
	}
	id, _ := repo.ParseID(h.Name)
	c.mu.Lock()
	_, tree := c.treePacks[id]
	c.mu.Unlock()
	if !tree {
		return ""
	}
	return p
}

// Load serves cached types from the cache, fetching the whole file once.
func (c *Backend) Load(ctx context.Context, h repo.Handle, length int, offset int64) (io.ReadCloser, error) {
	p := c.keeps(h)
	if h.Type == repo.KeyFile {
		p = c.keyPath(h.Name)
	}
	if p == "" || (h.Type == repo.PackFile && length == 0 && offset == 0) {
		// A whole-pack read is check or repair looking at the repository
		// itself, not at a copy.
		return c.Backend.Load(ctx, h, length, offset)
	}
	if err := c.ensure(ctx, h, p); err != nil {
		if repo.IsNotExist(err) || ctx.Err() != nil {
			return nil, err
		}
		// Not cacheable now (damaged upstream, cache unwritable): read
		// the backend directly, which reports its own errors.
		return c.Backend.Load(ctx, h, length, offset)
	}
	f, err := os.Open(p)
	if err != nil { // evicted by another process meanwhile
		return c.Backend.Load(ctx, h, length, offset)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if offset > fi.Size() || (length > 0 && offset+int64(length) > fi.Size()) {
		f.Close()
		return nil, fmt.Errorf("load %v: range %d+%d is beyond the file's %d bytes", h, offset, length, fi.Size())
	}
	n := fi.Size() - offset
	if length > 0 {
		n = int64(length)
	}
	return sectionReadCloser{io.NewSectionReader(f, offset, n), f}, nil
}

type sectionReadCloser struct {
	*io.SectionReader
	f *os.File
}

func (s sectionReadCloser) Close() error { return s.f.Close() }

// Save writes through: to the backend, then (for cached types) a copy to
// the cache. A failed copy only costs a later fetch.
func (c *Backend) Save(ctx context.Context, h repo.Handle, rd io.Reader, size int64) error {
	if err := c.Backend.Save(ctx, h, rd, size); err != nil {
		return err
	}
	p := c.keeps(h)
	seeker, ok := rd.(io.Seeker)
	if p == "" || !ok || c.writesOff() {
		return nil
	}
	if _, err := seeker.Seek(0, io.SeekStart); err != nil {
		return nil
	}
	var we writeErr
	if err := c.store(h, p, rd); errors.As(err, &we) {
		c.writeFailed(we.err)
	}
	return nil
}

// Remove removes h from the backend and the cache.
func (c *Backend) Remove(ctx context.Context, h repo.Handle) error {
	err := c.Backend.Remove(ctx, h)
	p := c.path(h)
	if h.Type == repo.KeyFile {
		p = c.keyPath(h.Name)
	}
	if p != "" {
		c.drop(p)
	}
	return err
}

// List passes through; a complete listing of a cached type also drops the
// cache entries the backend no longer has (another process pruned or
// forgot them).
func (c *Backend) List(ctx context.Context, t repo.FileType, fn func(repo.FileInfo) error) error {
	if t == repo.KeyFile {
		return c.listKeys(ctx, fn)
	}
	sub, cached := subdirs[t]
	if !cached || t == repo.PackFile && c.dir == "" {
		return c.Backend.List(ctx, t, fn)
	}
	seen := map[string]bool{}
	err := c.Backend.List(ctx, t, func(fi repo.FileInfo) error {
		seen[fi.Name] = true
		return fn(fi)
	})
	switch {
	case err != nil:
	case c.dir == "":
		c.mu.Lock()
		if c.early == nil {
			c.early = map[repo.FileType]map[string]bool{}
		}
		c.early[t] = seen
		c.mu.Unlock()
	default:
		c.dropUnlisted(filepath.Join(c.dir, sub), func(name string) bool { return seen[name] })
	}
	return err
}

// TreePacks implements repo.TreePackCache.
func (c *Backend) TreePacks(packs map[repo.ID]struct{}, complete bool) {
	c.mu.Lock()
	if complete {
		c.treePacks = make(map[repo.ID]struct{}, len(packs))
	}
	for id := range packs {
		c.treePacks[id] = struct{}{}
	}
	c.mu.Unlock()
	if complete && c.dir != "" {
		c.dropUnlisted(filepath.Join(c.dir, subdirs[repo.PackFile]), func(name string) bool {
			id, err := repo.ParseID(name)
			_, ok := packs[id]
			return err == nil && ok
		})
	}
}

// Evict implements repo.TreePackCache.
func (c *Backend) Evict(pack repo.ID) bool {
	p := c.path(repo.Handle{Type: repo.PackFile, Name: pack.String()})
	if p == "" {
		return false
	}
	if _, err := os.Stat(p); err != nil {
		return false
	}
	c.warnf("cached pack %v failed to decode; dropped it and reading the repository's copy", pack.Str())
	c.drop(p)
	return true
}
