package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLocalRepoCache: a local repository is not cached by default (the
// copy would cost as much as the original), and is with --cache-dir; check
// never fills the user's cache.
func TestLocalRepoCache(t *testing.T) {
	e := newInitEnv(t)
	src := filepath.Join(e.dir, "src")
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(src, "a", "b", "f"), []byte("x"), 0o644)
	e.ok("backup", src)
	e.ok("find", "f")
	if _, err := os.Stat(filepath.Join(e.env["XDG_CACHE_HOME"], "cairn")); !os.IsNotExist(err) {
		t.Fatalf("a local repository was cached by default: %v", err)
	}
	dir := filepath.Join(e.dir, "cache")
	e.ok("--cache-dir", dir, "check")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("check wrote to the cache directory: %v", err)
	}
	res := e.ok("--cache-dir", dir, "find", "f")
	if !strings.Contains(res.stdout, "/a/b/f") {
		t.Fatalf("find through the cache: %s", res.stdout)
	}
	entries, _ := os.ReadDir(dir)
	var repos []os.DirEntry
	for _, e := range entries {
		if e.Name() != "keys" { // key files, by location (repo/cache)
			repos = append(repos, e)
		}
	}
	if len(repos) != 1 {
		t.Fatalf("cache directory holds %d entries besides keys/, want the repository's", len(repos))
	}
	for _, sub := range []string{"index", "snapshots", "data"} {
		if files, _ := os.ReadDir(filepath.Join(dir, repos[0].Name(), sub)); len(files) == 0 {
			t.Errorf("nothing cached in %s", sub)
		}
	}
	if res := e.run("--cache-max-size", "lots", "snapshots"); res.code == 0 || !strings.Contains(res.stderr, "not a size") {
		t.Fatalf("bad --cache-max-size: %+v", res)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "100": 100, "4k": 4 << 10, "500M": 500 << 20, "4G": 4 << 30, "4GiB": 4 << 30, "2TB": 2 << 40} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"x", "-1", "0", "1.5G", "9999999999T"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) succeeded", bad)
		}
	}
}
