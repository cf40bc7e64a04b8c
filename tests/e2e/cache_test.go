package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/testutil"
)

// cacheRepo is an S3 repository on a real MinIO, used with a cache
// directory of the test's own.
type cacheRepo struct {
	t     *testing.T
	m     *testutil.MinIO
	url   string
	cache string
	src   string
}

func newCacheRepo(t *testing.T) *cacheRepo {
	m := testutil.StartMinIO(t)
	tmp := t.TempDir()
	c := &cacheRepo{t: t, m: m, url: m.URL("cache-bucket/repo"), cache: filepath.Join(tmp, "cache"), src: filepath.Join(tmp, "src")}
	o := testutil.DefaultGenOptions(11)
	o.SmallFiles, o.Dirs, o.LargeFiles = 300, 60, nil
	testutil.GenTree(t, c.src, o)
	c.must("init")
	return c
}

// run runs cairn with the test's cache directory (args may add --no-cache).
func (c *cacheRepo) run(args ...string) result {
	c.t.Helper()
	return cairnS3(c.t, c.m, c.url, []string{"CAIRN_CACHE_DIR=" + c.cache}, args...)
}

func (c *cacheRepo) must(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("cairn %s: %v", strings.Join(args, " "), r)
	}
	return r
}

// repoDir is the repository's directory in the cache.
func (c *cacheRepo) repoDir() string {
	c.t.Helper()
	entries, _ := os.ReadDir(c.cache)
	for _, e := range entries {
		if len(e.Name()) == 64 {
			return filepath.Join(c.cache, e.Name())
		}
	}
	c.t.Fatalf("no repository directory in cache %s", c.cache)
	return ""
}

// entries lists the cached files of one kind (index, snapshots, data).
func (c *cacheRepo) entries(sub string) []string {
	c.t.Helper()
	dirents, _ := os.ReadDir(filepath.Join(c.repoDir(), sub))
	var names []string
	for _, e := range dirents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// checkEntries fails unless every cached file matches its name and no temp
// file is left behind.
func (c *cacheRepo) checkEntries() {
	c.t.Helper()
	for _, sub := range []string{"index", "snapshots", "data"} {
		for _, name := range c.entries(sub) {
			buf, err := os.ReadFile(filepath.Join(c.repoDir(), sub, name))
			if err != nil {
				c.t.Fatal(err)
			}
			if sum := sha256.Sum256(buf); hex.EncodeToString(sum[:]) != name {
				c.t.Fatalf("cache entry %s/%s does not match its name", sub, name)
			}
		}
	}
}

func (c *cacheRepo) listed(kind string) []string {
	c.t.Helper()
	out := strings.Fields(c.must("--no-cache", "list", kind).stdout)
	slices.Sort(out)
	return out
}

// TestCacheTamperedEntries: index, snapshot and tree pack entries changed
// in the cache are noticed, replaced, and the commands print what they
// print without a cache.
func TestCacheTamperedEntries(t *testing.T) {
	c := newCacheRepo(t)
	c.must("backup", c.src)
	for _, sub := range []string{"index", "snapshots", "data"} {
		if len(c.entries(sub)) == 0 {
			t.Fatalf("backup wrote nothing through to the cache's %s", sub)
		}
	}
	want := c.must("--no-cache", "find", "*").stdout
	tamper := func(subs ...string) {
		for _, sub := range subs {
			for _, name := range c.entries(sub) {
				p := filepath.Join(c.repoDir(), sub, name)
				buf, _ := os.ReadFile(p)
				buf[len(buf)/2] ^= 1
				if err := os.WriteFile(p, buf, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	tamper("index", "snapshots", "data")
	r := c.must("find", "*")
	if r.stdout != want {
		t.Fatalf("find with a tampered cache printed something else:\n%s\nwant:\n%s", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "did not match its name") {
		t.Fatalf("no warning about tampered entries: %s", r.stderr)
	}
	c.checkEntries()
	tamper("data")
	target := filepath.Join(t.TempDir(), "restore")
	c.must("restore", "latest", "--target", target)
	testutil.CompareTrees(t, c.src, filepath.Join(target, c.src), testutil.CompareOptions{})
	c.checkEntries()
}

// TestCacheOtherWriterPrunes: a repository forgotten and pruned by another
// process (one without this cache) leaves no cache entry that breaks the
// next commands, and the stale entries go.
func TestCacheOtherWriterPrunes(t *testing.T) {
	c := newCacheRepo(t)
	c.must("backup", c.src)
	// A second, different tree: the first snapshot's trees become garbage.
	if err := os.RemoveAll(filepath.Join(c.src, "deep-1")); err != nil {
		t.Fatal(err)
	}
	testutil.GenTree(t, filepath.Join(c.src, "more"), testutil.GenOptions{Seed: 5, SmallFiles: 50, Depth: 3, Dirs: 20})
	c.must("backup", c.src)
	c.must("find", "*") // every tree pack in the cache
	before := c.entries("data")

	c.must("--no-cache", "forget", "--keep-last", "1", "--prune", "--max-unused", "0")
	want := c.must("--no-cache", "find", "*").stdout
	if r := c.must("find", "*"); r.stdout != want {
		t.Fatalf("find after another process pruned:\n%s\nwant:\n%s", r.stdout, want)
	}
	snaps := c.listed("snapshots")
	if got := c.entries("snapshots"); !slices.Equal(got, snaps) {
		t.Fatalf("cached snapshots %v, repository has %v", got, snaps)
	}
	if got, idx := c.entries("index"), c.listed("index"); !slices.Equal(got, idx) {
		t.Fatalf("cached index files %v, repository has %v", got, idx)
	}
	packs := c.listed("packs")
	for _, p := range c.entries("data") {
		if _, found := slices.BinarySearch(packs, p); !found {
			t.Fatalf("cached pack %s was pruned from the repository", p)
		}
	}
	if slices.Equal(before, c.entries("data")) {
		t.Fatal("prune removed no tree pack: the test proves nothing")
	}
	c.must("backup", c.src)
	target := filepath.Join(t.TempDir(), "restore")
	c.must("restore", "latest", "--target", target)
	testutil.CompareTrees(t, c.src, filepath.Join(target, c.src), testutil.CompareOptions{})
	c.checkEntries()
}

// TestCacheSharedByTwoProcesses: two cairn processes fill one cold cache
// at once (two finds), then a backup and a find run at once.
func TestCacheSharedByTwoProcesses(t *testing.T) {
	c := newCacheRepo(t)
	c.must("backup", c.src)
	snap := c.listed("snapshots")[0]
	want := c.must("--no-cache", "find", "--snapshot", snap, "*").stdout
	both := func(a, b []string) (result, result) {
		var ra, rb result
		var wg sync.WaitGroup
		wg.Go(func() { ra = c.run(a...) })
		wg.Go(func() { rb = c.run(b...) })
		wg.Wait()
		return ra, rb
	}
	os.RemoveAll(c.cache)
	find := []string{"find", "--snapshot", snap, "*"}
	r1, r2 := both(find, find)
	for _, r := range []result{r1, r2} {
		if r.code != 0 || r.stdout != want {
			t.Fatalf("concurrent find on a cold cache: %v", r)
		}
	}
	testutil.GenTree(t, filepath.Join(c.src, "new"), testutil.GenOptions{Seed: 9, SmallFiles: 40, Depth: 2, Dirs: 10})
	rb, rf := both([]string{"backup", c.src}, find)
	if rb.code != 0 {
		t.Fatalf("backup next to a find: %v", rb)
	}
	if rf.code != 0 || rf.stdout != want {
		t.Fatalf("find next to a backup: %v", rf)
	}
	c.checkEntries()
}

// TestCacheUnusable: a cache directory that cannot be created or is
// read-only costs one warning line; the command succeeds.
func TestCacheUnusable(t *testing.T) {
	c := newCacheRepo(t)
	c.must("--no-cache", "backup", c.src)
	ro := t.TempDir()
	if err := syscall.Mount("tmpfs", ro, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	defer syscall.Unmount(ro, 0)
	if err := syscall.Mount("", ro, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	want := c.must("--no-cache", "find", "*").stdout
	for _, dir := range []string{"/dev/null/cache", ro} {
		c.cache = dir
		r := c.must("find", "*")
		if r.stdout != want {
			t.Fatalf("cache %s: find printed something else", dir)
		}
		if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "not usable") {
			t.Fatalf("cache %s: want one warning line, got %q", dir, r.stderr)
		}
	}
}

// TestCacheCleanup: caches of repositories unused for 30 days are
// reported, and removed by --cleanup-cache; nothing else in the cache
// directory is touched.
func TestCacheCleanup(t *testing.T) {
	c := newCacheRepo(t)
	old := time.Now().Add(-31 * 24 * time.Hour)
	stale := filepath.Join(c.cache, strings.Repeat("ab", 32))
	tools := filepath.Join(c.cache, "bin")
	for _, d := range []string{stale, tools} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(d, old, old)
	}
	r := c.must("snapshots")
	if !strings.Contains(r.stderr, "found 1 caches") {
		t.Fatalf("old cache not reported: %s", r.stderr)
	}
	c.must("--cleanup-cache", "snapshots")
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("old cache not removed: %v", err)
	}
	if _, err := os.Stat(tools); err != nil {
		t.Fatalf("--cleanup-cache touched %s: %v", tools, err)
	}
	c.repoDir() // the repository's own cache stays
}
