package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/cache"
	"github.com/cairn-backup/cairn/repo/s3"
)

// resolveCache fills the cache settings from the environment and checks
// them. restic's RESTIC_CACHE_DIR is not read: its cache has another
// layout, and sharing a directory with restic would mix the two.
func (g *globalOptions) resolveCache() error {
	if g.cacheDir == "" {
		g.cacheDir = g.env.getenv("CAIRN_CACHE_DIR")
	}
	if g.cacheMaxSize != "" {
		if _, err := parseSize(g.cacheMaxSize); err != nil {
			return fmt.Errorf("--cache-max-size: %w", err)
		}
	}
	return nil
}

// cacheBase is the base cache directory for this run; "" when none can be
// found.
func (g *globalOptions) cacheBase() string {
	switch {
	case g.cacheTemp != "":
		return g.cacheTemp
	case g.cacheDir != "":
		return g.cacheDir
	}
	return cache.DefaultDir(g.env.getenv)
}

// wrapCache puts a cache in front of be, or returns nil for none. A local
// repository is not cached unless a cache directory is given: reading a
// tree from the cache costs what reading it from the repository does, so
// the copy would only add work (measured: find over 2,000 directories takes
// as long either way).
func (g *globalOptions) wrapCache(be repo.Backend) *cache.Backend {
	if g.noCache || (isLocalLocation(g.repo) && g.cacheDir == "") {
		return nil
	}
	base := g.cacheBase()
	if base == "" {
		g.warnf("warning: no cache directory ($XDG_CACHE_HOME and $HOME are unset); going on without a cache (give --cache-dir)\n")
		return nil
	}
	size, _ := parseSize(g.cacheMaxSize) // checked in resolveCache
	return cache.Wrap(be, cache.Options{Dir: base, MaxSize: size,
		Warn: func(msg string) { g.warnf("warning: %s\n", msg) }})
}

// attachCache starts the cache for the opened repository and looks after
// the caches of repositories not used for a long time.
func (g *globalOptions) attachCache(cb *cache.Backend, repoID string) {
	cb.Attach(repoID)
	if cb.Dir() == "" || g.cacheTemp != "" {
		return
	}
	g.verbosef(2, "using cache %s\n", cb.Dir())
	g.oldCaches()
}

// oldCaches removes (--cleanup-cache) or reports the caches of
// repositories not used for cache.OldAge.
func (g *globalOptions) oldCaches() {
	base := g.cacheBase()
	if base == "" || g.cacheTemp != "" {
		return
	}
	old, err := cache.Old(base, cache.OldAge)
	if err != nil || len(old) == 0 {
		return
	}
	if g.cleanupCache {
		if err := cache.Remove(old); err != nil {
			g.warnf("warning: %v\n", err)
			return
		}
		g.printf("removed %d old cache directories from %s\n", len(old), base)
		return
	}
	if !g.quiet {
		g.warnf("found %d caches of repositories not used for 30 days in %s; remove them with --cleanup-cache\n", len(old), base)
	}
}

// isLocalLocation mirrors openBackend: what is not S3 or another remote
// scheme is a local directory.
func isLocalLocation(loc string) bool {
	if s3.IsLocation(loc) {
		return false
	}
	scheme, _, hasScheme := strings.Cut(loc, ":")
	return !hasScheme || scheme == "local" || !isKnownRemote(scheme)
}

// parseSize reads a byte count with an optional binary suffix (K, M, G, T,
// also written KiB, MB, ...); "" is 0 (the default).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "" {
		return 0, nil
	}
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGT", t[n-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			t = t[:n-1]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size: use a number of bytes with an optional K, M, G or T suffix (e.g. 4G)", s)
	}
	return n * mult, nil
}
