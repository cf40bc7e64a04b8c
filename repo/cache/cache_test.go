package cache

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backendtest"
)

const testRepoID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// counting counts the loads that reach the real backend below the cache.
type counting struct {
	repo.Backend
	loads, packLoads atomic.Int64
}

func (c *counting) Load(ctx context.Context, h repo.Handle, length int, offset int64) (io.ReadCloser, error) {
	c.loads.Add(1)
	if h.Type == repo.PackFile {
		c.packLoads.Add(1)
	}
	return c.Backend.Load(ctx, h, length, offset)
}

func newLocal(t *testing.T) *counting {
	t.Helper()
	be, err := repo.CreateLocal(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return &counting{Backend: be}
}

// warnings collects what a cache warns about.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) add(m string) { w.mu.Lock(); w.msgs = append(w.msgs, m); w.mu.Unlock() }
func (w *warnings) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.msgs, "\n")
}

// open is one process's view: a fresh cache Backend over be and dir.
func open(t *testing.T, be repo.Backend, dir string, w *warnings) *Backend {
	t.Helper()
	if w == nil {
		w = &warnings{}
	}
	c := Wrap(be, Options{Dir: dir, Warn: w.add})
	c.Attach(testRepoID)
	if c.Dir() == "" {
		t.Fatalf("cache in %s not attached: %s", dir, w)
	}
	return c
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func save(t *testing.T, be repo.Backend, typ repo.FileType, data []byte) repo.Handle {
	t.Helper()
	h := repo.Handle{Type: typ, Name: repo.Hash(data).String()}
	if err := be.Save(context.Background(), h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	return h
}

func load(t *testing.T, be repo.Backend, h repo.Handle, length int, offset int64) []byte {
	t.Helper()
	rd, err := be.Load(context.Background(), h, length, offset)
	if err != nil {
		t.Fatalf("load %v: %v", h, err)
	}
	defer rd.Close()
	buf, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

func treePack(c *Backend, h repo.Handle) {
	id, _ := repo.ParseID(h.Name)
	c.TreePacks(map[repo.ID]struct{}{id: {}}, false)
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) repo.Backend {
		return open(t, newLocal(t), t.TempDir(), nil)
	})
}

// allTrees treats every pack as a tree pack, so the conformance suite runs
// through the cached path for packs too.
type allTrees struct{ *Backend }

func (a allTrees) Save(ctx context.Context, h repo.Handle, rd io.Reader, size int64) error {
	if id, err := repo.ParseID(h.Name); err == nil && h.Type == repo.PackFile {
		a.TreePacks(map[repo.ID]struct{}{id: {}}, false)
	}
	return a.Backend.Save(ctx, h, rd, size)
}

func (a allTrees) Load(ctx context.Context, h repo.Handle, length int, offset int64) (io.ReadCloser, error) {
	if id, err := repo.ParseID(h.Name); err == nil && h.Type == repo.PackFile {
		a.TreePacks(map[repo.ID]struct{}{id: {}}, false)
	}
	return a.Backend.Load(ctx, h, length, offset)
}

func TestConformanceTreePacks(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) repo.Backend {
		return allTrees{open(t, newLocal(t), t.TempDir(), nil)}
	})
}

// TestServedFromCache: saved files are written through; a later process
// reads index, snapshot and tree pack without touching the backend, and a
// tree pack that was not cached is fetched once for all its ranges.
func TestServedFromCache(t *testing.T) {
	be, dir := newLocal(t), t.TempDir()
	c := open(t, be, dir, nil)
	idx := save(t, c, repo.IndexFile, randBytes(5000))
	snap := save(t, c, repo.SnapshotFile, randBytes(300))
	pack := randBytes(1 << 20)
	treePack(c, repo.Handle{Type: repo.PackFile, Name: repo.Hash(pack).String()})
	ph := save(t, c, repo.PackFile, pack)
	data := save(t, c, repo.PackFile, randBytes(1000)) // not a tree pack
	if _, err := os.Stat(filepath.Join(c.Dir(), "data", data.Name)); err == nil {
		t.Fatal("a data pack was cached")
	}
	if _, err := os.Stat(filepath.Join(dir, testRepoID, "CACHEDIR.TAG")); err != nil {
		t.Fatal(err)
	}

	c2 := open(t, be, dir, nil)
	treePack(c2, ph)
	load(t, c2, idx, 0, 0)
	load(t, c2, snap, 0, 0)
	if got := load(t, c2, ph, 100, 5000); !bytes.Equal(got, pack[5000:5100]) {
		t.Fatal("range from the cached pack differs")
	}
	if n := be.loads.Load(); n != 0 {
		t.Fatalf("%d loads reached the backend; want 0", n)
	}
	// A pack cached by nobody: one whole fetch serves all its ranges,
	// also when many goroutines ask at once.
	pack2 := randBytes(2 << 20)
	ph2 := save(t, be, repo.PackFile, pack2)
	treePack(c2, ph2)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			off := int64(i * 100_000)
			if got := load(t, c2, ph2, 1000, off); !bytes.Equal(got, pack2[off:off+1000]) {
				t.Error("ranged read of a freshly cached pack differs")
			}
		})
	}
	wg.Wait()
	if n := be.loads.Load(); n != 1 {
		t.Fatalf("%d backend loads for 16 ranges of one tree pack; want 1", n)
	}
}

// TestTamperedEntryReplaced: an index, snapshot or tree pack changed in
// the cache is noticed before use, dropped, fetched again and rewritten.
func TestTamperedEntryReplaced(t *testing.T) {
	for _, typ := range []repo.FileType{repo.IndexFile, repo.SnapshotFile, repo.PackFile} {
		t.Run(typ.String(), func(t *testing.T) {
			be, dir := newLocal(t), t.TempDir()
			c := open(t, be, dir, nil)
			data := randBytes(100_000)
			h := repo.Handle{Type: typ, Name: repo.Hash(data).String()}
			treePack(c, h)
			save(t, c, typ, data)
			p := c.path(h)
			damaged := bytes.Clone(data)
			damaged[500] ^= 1
			if err := os.WriteFile(p, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			w := &warnings{}
			c2 := open(t, be, dir, w)
			treePack(c2, h)
			if got := load(t, c2, h, 1000, 0); !bytes.Equal(got, data[:1000]) {
				t.Fatal("served the damaged copy")
			}
			if !strings.Contains(w.String(), "did not match its name") {
				t.Fatalf("no warning about the damaged entry: %q", w)
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
				t.Fatal("the damaged entry was not replaced")
			}
		})
	}
}

// TestBackendDamageNotCached: a file whose content in the backend does not
// match its name is passed through as it is and never cached.
func TestBackendDamageNotCached(t *testing.T) {
	be, dir := newLocal(t), t.TempDir()
	data := randBytes(1000)
	h := repo.Handle{Type: repo.SnapshotFile, Name: repo.Hash([]byte("other")).String()}
	if err := be.Save(context.Background(), h, bytes.NewReader(data), 1000); err != nil {
		t.Fatal(err)
	}
	c := open(t, be, dir, nil)
	if got := load(t, c, h, 0, 0); !bytes.Equal(got, data) {
		t.Fatal("damaged file not passed through")
	}
	if _, err := os.Stat(c.path(h)); err == nil {
		t.Fatal("a file that does not match its name was cached")
	}
}

// TestOtherWriterRemoved: files another process removed vanish from the
// cache at the next listing or index load; removes through the cache drop
// the entry at once.
func TestOtherWriterRemoved(t *testing.T) {
	ctx := context.Background()
	be, dir := newLocal(t), t.TempDir()
	c := open(t, be, dir, nil)
	snap := save(t, c, repo.SnapshotFile, randBytes(100))
	keep := save(t, c, repo.SnapshotFile, randBytes(100))
	pack := randBytes(1000)
	ph := repo.Handle{Type: repo.PackFile, Name: repo.Hash(pack).String()}
	treePack(c, ph)
	save(t, c, repo.PackFile, pack)
	idx := save(t, c, repo.IndexFile, randBytes(100))

	if err := be.Remove(ctx, snap); err != nil { // another process forgets
		t.Fatal(err)
	}
	if err := c.List(ctx, repo.SnapshotFile, func(repo.FileInfo) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.path(snap)); err == nil {
		t.Fatal("a forgotten snapshot stayed in the cache")
	}
	if _, err := os.Stat(c.path(keep)); err != nil {
		t.Fatal("a listed snapshot was dropped")
	}
	c.TreePacks(map[repo.ID]struct{}{}, true) // the new index has no such pack
	if _, err := os.Stat(filepath.Join(c.Dir(), "data", ph.Name)); err == nil {
		t.Fatal("a pack the index no longer lists stayed in the cache")
	}
	if err := c.Remove(ctx, idx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.path(idx)); err == nil {
		t.Fatal("a removed index file stayed in the cache")
	}
}

// A listing made before Attach (prefetched while the key was derived)
// drops what the backend no longer has once the cache is attached.
func TestListBeforeAttachDropsRemoved(t *testing.T) {
	ctx := context.Background()
	be, dir := newLocal(t), t.TempDir()
	c := open(t, be, dir, nil)
	gone := save(t, c, repo.SnapshotFile, randBytes(100))
	keep := save(t, c, repo.SnapshotFile, randBytes(100))
	if err := be.Remove(ctx, gone); err != nil { // another process forgets
		t.Fatal(err)
	}
	c2 := Wrap(be, Options{Dir: dir})
	n := 0
	if err := c2.List(ctx, repo.SnapshotFile, func(repo.FileInfo) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("listed %d (%v), want 1", n, err)
	}
	c2.Attach(testRepoID)
	if _, err := os.Stat(c2.path(gone)); err == nil {
		t.Error("a forgotten snapshot stayed in the cache")
	}
	if _, err := os.Stat(c2.path(keep)); err != nil {
		t.Error("a listed snapshot was dropped")
	}
}

// TestUnusableDir: a cache directory that cannot be made, or is read-only,
// gives one warning and no cache; the backend works as before.
func TestUnusableDir(t *testing.T) {
	ro := t.TempDir()
	if err := mountReadOnly(t, ro); err != nil {
		t.Logf("no read-only mount (%v); testing only an uncreatable directory", err)
		ro = ""
	}
	for _, dir := range []string{"/dev/null/cache", ro} {
		if dir == "" {
			continue
		}
		be := newLocal(t)
		w := &warnings{}
		c := Wrap(be, Options{Dir: dir, Warn: w.add})
		c.Attach(testRepoID)
		if c.Dir() != "" || strings.Count(w.String(), "\n") != 0 || !strings.Contains(w.String(), "not usable") {
			t.Fatalf("%s: dir %q, warnings %q", dir, c.Dir(), w)
		}
		h := save(t, c, repo.IndexFile, []byte("index"))
		if got := load(t, c, h, 0, 0); string(got) != "index" {
			t.Fatalf("%s: load through an unusable cache: %q", dir, got)
		}
	}
}

// TestBadRepoID: a config ID that is not 64 hex digits (a hostile
// repository naming "../x") never becomes a path.
func TestBadRepoID(t *testing.T) {
	base := t.TempDir()
	w := &warnings{}
	c := Wrap(newLocal(t), Options{Dir: filepath.Join(base, "c"), Warn: w.add})
	c.Attach("../../etc")
	if c.Dir() != "" || !strings.Contains(w.String(), "not 64 hex digits") {
		t.Fatalf("dir %q, warnings %q", c.Dir(), w)
	}
	if entries, _ := os.ReadDir(base); len(entries) != 0 {
		t.Fatalf("something was created: %v", entries)
	}
}

// TestSizeBound: tree packs beyond MaxSize are evicted least recently used
// first.
func TestSizeBound(t *testing.T) {
	be, dir := newLocal(t), t.TempDir()
	c := Wrap(be, Options{Dir: dir, MaxSize: 1 << 20})
	c.Attach(testRepoID)
	var hs []repo.Handle
	for i := range 8 {
		data := randBytes(200 << 10)
		h := repo.Handle{Type: repo.PackFile, Name: repo.Hash(data).String()}
		treePack(c, h)
		save(t, c, repo.PackFile, data)
		// Distinct mtimes: the oldest is the least recently used.
		when := time.Now().Add(time.Duration(i-10) * time.Minute)
		os.Chtimes(c.path(h), when, when)
		hs = append(hs, h)
	}
	var total int64
	entries, _ := os.ReadDir(filepath.Join(c.Dir(), "data"))
	for _, e := range entries {
		fi, _ := e.Info()
		total += fi.Size()
	}
	if total > 1<<20 {
		t.Fatalf("cache holds %d bytes of packs, bound 1 MiB", total)
	}
	if _, err := os.Stat(c.path(hs[len(hs)-1])); err != nil {
		t.Fatal("the newest pack was evicted")
	}
	if _, err := os.Stat(c.path(hs[0])); err == nil {
		t.Fatal("the oldest pack was kept")
	}
}

// TestOld: only directories named by repository IDs are old caches; the
// tools that live next to them are never touched.
func TestOld(t *testing.T) {
	base := t.TempDir()
	old := time.Now().Add(-40 * 24 * time.Hour)
	oldRepo := filepath.Join(base, testRepoID)
	newRepo := filepath.Join(base, strings.Repeat("ab", 32))
	for _, d := range []string{"bin", "k8s-1.31", oldRepo, newRepo, strings.Repeat("AB", 32)} {
		p := filepath.Join(base, filepath.Base(d))
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if p != newRepo {
			os.Chtimes(p, old, old)
		}
	}
	got, err := Old(base, OldAge)
	if err != nil || len(got) != 1 || got[0] != oldRepo {
		t.Fatalf("Old = %v, %v; want only %s", got, err, oldRepo)
	}
	if err := Remove(got); err != nil {
		t.Fatal(err)
	}
	if err := Remove([]string{filepath.Join(base, "bin")}); err == nil {
		t.Fatal("Remove took a directory that is not a repository cache")
	}
	entries, _ := os.ReadDir(base)
	if len(entries) != 4 {
		t.Fatalf("left %d entries, want bin, k8s-1.31, the new and the upper-case dir", len(entries))
	}
}

func TestDefaultDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/x/cairn"},
		{map[string]string{"XDG_CACHE_HOME": "rel", "HOME": "/h"}, "/h/.cache/cairn"},
		{map[string]string{}, ""},
	} {
		if got := DefaultDir(env(tt.env)); got != tt.want {
			t.Errorf("DefaultDir(%v) = %q, want %q", tt.env, got, tt.want)
		}
	}
}

// TestDirTurnsReadOnly: a cache that stops being writable after it was
// attached warns once and goes on serving from the backend.
func TestDirTurnsReadOnly(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	defer syscall.Unmount(dir, 0)
	be, w := newLocal(t), &warnings{}
	c := open(t, be, dir, w)
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		data := randBytes(100 + i)
		h := save(t, c, repo.SnapshotFile, data)
		if got := load(t, c, h, 0, 0); !bytes.Equal(got, data) {
			t.Fatal("load through a read-only cache differs")
		}
	}
	if n := strings.Count(w.String(), "cannot write"); n != 1 {
		t.Fatalf("want one warning, got %q", w)
	}
}

// Key files are cached by location, before Attach: the next process
// finds them (CachedKeys) and reads them locally; a key removed from the
// repository leaves the cache with the next listing.
func TestKeyFilesCached(t *testing.T) {
	ctx := context.Background()
	be, dir := newLocal(t), t.TempDir()
	key := save(t, be, repo.KeyFile, randBytes(300))
	c := Wrap(be, Options{Dir: dir})
	if got := load(t, c, key, 0, 0); len(got) != 300 {
		t.Fatalf("loaded %d bytes", len(got))
	}
	c2 := Wrap(be, Options{Dir: dir})
	if names := c2.CachedKeys(); len(names) != 1 || names[0] != key.Name {
		t.Fatalf("cached keys %v, want %s", names, key.Name)
	}
	before := be.loads.Load()
	load(t, c2, key, 0, 0)
	if be.loads.Load() != before {
		t.Error("a cached key file was read from the backend")
	}
	// Another location has keys of its own.
	other := Wrap(&located{be, "elsewhere"}, Options{Dir: dir})
	if names := other.CachedKeys(); len(names) != 0 {
		t.Errorf("another location sees cached keys %v", names)
	}
	// Tampered: read from the backend again, and the copy replaced.
	p := c2.keyPath(key.Name)
	if err := os.WriteFile(p, randBytes(300), 0o600); err != nil {
		t.Fatal(err)
	}
	c3 := Wrap(be, Options{Dir: dir, Warn: func(string) {}})
	if got := load(t, c3, key, 0, 0); repo.Hash(got).String() != key.Name {
		t.Fatal("a tampered key file was served")
	}
	if err := be.Remove(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := c3.List(ctx, repo.KeyFile, func(repo.FileInfo) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if names := c3.CachedKeys(); len(names) != 0 {
		t.Errorf("a removed key file stayed cached: %v", names)
	}
}

type located struct {
	repo.Backend
	loc string
}

func (l *located) Location() string { return l.loc }

// The key directories of locations not used for a long time go; other
// entries of keys/ stay.
func TestOldKeyDirsRemoved(t *testing.T) {
	be, dir := newLocal(t), t.TempDir()
	old := filepath.Join(dir, "keys", "0123456789abcdef01234567")
	other := filepath.Join(dir, "keys", "not-a-key-dir")
	for _, d := range []string{old, other} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		then := time.Now().Add(-2 * OldAge)
		os.Chtimes(d, then, then)
	}
	c := Wrap(be, Options{Dir: dir})
	save(t, be, repo.KeyFile, randBytes(10))
	c.CachedKeys()
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Error("an old location's key directory stayed")
	}
	if _, err := os.Stat(other); err != nil {
		t.Error("an entry that is not a key directory was removed")
	}
}
