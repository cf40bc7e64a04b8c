package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
)

// Key files are cached too: with a copy at hand, opening a repository
// starts deriving the key (scrypt, the slowest step of opening) while the
// key files are listed, instead of two round trips later. They are kept by
// repository location, not ID: the ID is in the config, which only the key
// decrypts. Like every entry, a key file is checked against its name (its
// SHA-256) before use, and repo.Open uses one only if the listing still
// has it. Layout: <base>/keys/<24 hex digits of the location's SHA-256>/;
// a location's directory goes after OldAge unused.

// keysDir is where the key files of this location are kept, "" for none.
func (c *Backend) keysDir() string {
	if c.opts.Dir == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(c.Backend.Location()))
	return filepath.Join(c.opts.Dir, "keys", hex.EncodeToString(sum[:12]))
}

// keyPath is where key file name is kept, "" for none.
func (c *Backend) keyPath(name string) string {
	dir := c.keysDir()
	if dir == "" {
		return ""
	}
	if _, err := repo.ParseID(name); err != nil {
		return ""
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	return filepath.Join(dir, name)
}

// CachedKeys implements repo.KeyCache. It also marks this location's
// keys as used and removes those of locations not used for OldAge.
func (c *Backend) CachedKeys() []string {
	dir := c.keysDir()
	if dir == "" {
		return nil
	}
	removeOldKeyDirs(filepath.Dir(dir), OldAge)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	now := time.Now()
	_ = os.Chtimes(dir, now, now)
	var names []string
	for _, e := range entries {
		if _, err := repo.ParseID(e.Name()); err == nil && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names
}

// listKeys lists the key files and drops the cached ones the repository
// no longer has (a key was removed).
func (c *Backend) listKeys(ctx context.Context, fn func(repo.FileInfo) error) error {
	seen := map[string]bool{}
	err := c.Backend.List(ctx, repo.KeyFile, func(fi repo.FileInfo) error {
		seen[fi.Name] = true
		return fn(fi)
	})
	if dir := c.keysDir(); err == nil && dir != "" {
		c.dropUnlisted(dir, func(name string) bool { return seen[name] })
	}
	return err
}

// isKeysDirName reports whether name is a location's key directory (24
// lowercase hex digits): the only entries of <base>/keys ever removed.
func isKeysDirName(name string) bool {
	return len(name) == 24 && strings.Trim(name, "0123456789abcdef") == ""
}

// removeOldKeyDirs removes the key directories in dir not used for maxAge.
func removeOldKeyDirs(dir string, maxAge time.Duration) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !isKeysDirName(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > maxAge {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}
