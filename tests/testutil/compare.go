package testutil

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CompareOptions tunes CompareTrees and DiffTrees.
type CompareOptions struct {
	// SecondPrecision compares mtimes to the second only (whole seconds
	// since the epoch); otherwise they must match to the nanosecond.
	SecondPrecision bool
	// IgnoreMtime skips mtime comparison altogether; IgnoreDirMtime and
	// IgnoreSymlinkMtime skip it for directories and symlinks only.
	IgnoreMtime        bool
	IgnoreDirMtime     bool
	IgnoreSymlinkMtime bool
	// IgnoreRootMeta skips the mode, mtime and owner of the two roots
	// themselves (their contents are still compared).
	IgnoreRootMeta bool
	// CompareOwner also compares uid and gid.
	CompareOwner bool
	// Ignore, if set, is called with the slash-separated path of each entry
	// relative to the roots; entries for which it returns true are skipped
	// in both trees, with everything below them.
	Ignore func(rel string) bool
	// MaxDiffs is how many differences CompareTrees lists; 0 means 30.
	MaxDiffs int
}

// CompareTrees walks the trees a and b (symlinks are never followed) and
// fails the test, listing the differences, if they differ in: the set of
// entries, entry type, file size and content (SHA-256, with the offset of the
// first differing byte), permission bits (with setuid/setgid/sticky; not for
// symlinks), mtime (see opts), symlink target, and, if opts.CompareOwner,
// uid/gid. It returns the number of entries compared, not counting the roots.
func CompareTrees(t testing.TB, a, b string, opts CompareOptions) int {
	t.Helper()
	n, diffs, err := DiffTrees(a, b, opts)
	if err != nil {
		t.Fatalf("CompareTrees(%s, %s): %v", a, b, err)
	}
	if len(diffs) > 0 {
		max := opts.MaxDiffs
		if max <= 0 {
			max = 30
		}
		shown := diffs
		more := ""
		if len(shown) > max {
			shown = shown[:max]
			more = fmt.Sprintf("\n  ... and %d more", len(diffs)-max)
		}
		t.Fatalf("trees differ: a=%s b=%s: %d difference(s):\n  %s%s",
			a, b, len(diffs), strings.Join(shown, "\n  "), more)
	}
	return n
}

// DiffTrees is CompareTrees without a test: it returns the number of entries
// compared (not counting the roots) and one message per difference. err
// reports a failure to read either tree (not a difference).
func DiffTrees(a, b string, opts CompareOptions) (n int, diffs []string, err error) {
	c := &comparer{a: a, b: b, opts: opts}
	ai, err := os.Lstat(a)
	if err != nil {
		return 0, nil, err
	}
	bi, err := os.Lstat(b)
	if err != nil {
		return 0, nil, err
	}
	if err := c.entry(".", ai, bi); err != nil {
		return c.n, c.diffs, err
	}
	return c.n, c.diffs, nil
}

type comparer struct {
	a, b  string
	opts  CompareOptions
	n     int
	diffs []string
	bufA  []byte
	bufB  []byte
}

func (c *comparer) addf(rel, format string, args ...any) {
	c.diffs = append(c.diffs, fmt.Sprintf("%q: ", rel)+fmt.Sprintf(format, args...))
}

func typeName(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "regular file"
	case fs.ModeDir:
		return "directory"
	case fs.ModeSymlink:
		return "symlink"
	case fs.ModeNamedPipe:
		return "named pipe"
	case fs.ModeSocket:
		return "socket"
	case fs.ModeDevice:
		return "block device"
	case fs.ModeDevice | fs.ModeCharDevice:
		return "char device"
	}
	return "irregular file"
}

const permMask = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// entry compares one entry present in both trees, recursing into directories.
func (c *comparer) entry(rel string, ai, bi fs.FileInfo) error {
	if rel != "." {
		c.n++
	}
	if ai.Mode().Type() != bi.Mode().Type() {
		c.addf(rel, "type differs: a is a %s, b is a %s", typeName(ai.Mode()), typeName(bi.Mode()))
		return nil
	}
	pa, pb := filepath.Join(c.a, filepath.FromSlash(rel)), filepath.Join(c.b, filepath.FromSlash(rel))
	meta := rel != "." || !c.opts.IgnoreRootMeta
	typ := ai.Mode().Type()

	if meta && typ != fs.ModeSymlink && ai.Mode()&permMask != bi.Mode()&permMask {
		c.addf(rel, "mode differs: a=%v (%#o) b=%v (%#o)",
			ai.Mode()&permMask, uint32(ai.Mode().Perm()), bi.Mode()&permMask, uint32(bi.Mode().Perm()))
	}
	if meta && c.mtimeChecked(typ) {
		ma, mb := ai.ModTime(), bi.ModTime()
		same := ma.Equal(mb)
		if c.opts.SecondPrecision {
			same = ma.Unix() == mb.Unix()
		}
		if !same {
			c.addf(rel, "mtime differs: a=%s b=%s (b-a=%v)",
				ma.UTC().Format(time.RFC3339Nano), mb.UTC().Format(time.RFC3339Nano), mb.Sub(ma))
		}
	}
	if meta && c.opts.CompareOwner {
		sa, oka := ai.Sys().(*syscall.Stat_t)
		sb, okb := bi.Sys().(*syscall.Stat_t)
		if oka && okb {
			if sa.Uid != sb.Uid {
				c.addf(rel, "uid differs: a=%d b=%d", sa.Uid, sb.Uid)
			}
			if sa.Gid != sb.Gid {
				c.addf(rel, "gid differs: a=%d b=%d", sa.Gid, sb.Gid)
			}
		}
	}

	switch typ {
	case 0:
		if ai.Size() != bi.Size() {
			c.addf(rel, "size differs: a=%d b=%d", ai.Size(), bi.Size())
			return nil
		}
		return c.content(rel, pa, pb)
	case fs.ModeSymlink:
		ta, err := os.Readlink(pa)
		if err != nil {
			return err
		}
		tb, err := os.Readlink(pb)
		if err != nil {
			return err
		}
		if ta != tb {
			c.addf(rel, "symlink target differs: a=%q b=%q", ta, tb)
		}
	case fs.ModeDir:
		return c.dir(rel, pa, pb)
	}
	return nil
}

func (c *comparer) mtimeChecked(typ fs.FileMode) bool {
	switch {
	case c.opts.IgnoreMtime:
		return false
	case typ == fs.ModeDir:
		return !c.opts.IgnoreDirMtime
	case typ == fs.ModeSymlink:
		return !c.opts.IgnoreSymlinkMtime
	}
	return true
}

func (c *comparer) dir(rel, pa, pb string) error {
	ea, err := os.ReadDir(pa) // sorted by name
	if err != nil {
		return err
	}
	eb, err := os.ReadDir(pb)
	if err != nil {
		return err
	}
	i, j := 0, 0
	for i < len(ea) || j < len(eb) {
		var name string
		switch {
		case j >= len(eb) || (i < len(ea) && ea[i].Name() < eb[j].Name()):
			name = ea[i].Name()
			if r := path.Join(rel, name); c.opts.Ignore == nil || !c.opts.Ignore(r) {
				c.addf(r, "missing in b (a has a %s)", typeName(ea[i].Type()))
			}
			i++
			continue
		case i >= len(ea) || eb[j].Name() < ea[i].Name():
			name = eb[j].Name()
			if r := path.Join(rel, name); c.opts.Ignore == nil || !c.opts.Ignore(r) {
				c.addf(r, "extra in b (b has a %s)", typeName(eb[j].Type()))
			}
			j++
			continue
		}
		name = ea[i].Name()
		i++
		j++
		r := path.Join(rel, name)
		if c.opts.Ignore != nil && c.opts.Ignore(r) {
			continue
		}
		ai, err := os.Lstat(filepath.Join(pa, name))
		if err != nil {
			return err
		}
		bi, err := os.Lstat(filepath.Join(pb, name))
		if err != nil {
			return err
		}
		if err := c.entry(r, ai, bi); err != nil {
			return err
		}
	}
	return nil
}

// content compares two files of equal size by streaming both through
// SHA-256, noting the offset of the first differing byte.
func (c *comparer) content(rel, pa, pb string) error {
	fa, err := os.Open(pa)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(pb)
	if err != nil {
		return err
	}
	defer fb.Close()
	if c.bufA == nil {
		c.bufA, c.bufB = make([]byte, 1<<20), make([]byte, 1<<20)
	}
	ha, hb := sha256.New(), sha256.New()
	var off int64
	first := int64(-1)
	for {
		na, errA := io.ReadFull(fa, c.bufA)
		nb, errB := io.ReadFull(fb, c.bufB)
		ha.Write(c.bufA[:na])
		hb.Write(c.bufB[:nb])
		if first < 0 && !bytes.Equal(c.bufA[:na], c.bufB[:nb]) {
			n := min(na, nb)
			k := 0
			for k < n && c.bufA[k] == c.bufB[k] {
				k++
			}
			first = off + int64(k)
		}
		off += int64(max(na, nb))
		endA := errA == io.EOF || errors.Is(errA, io.ErrUnexpectedEOF)
		endB := errB == io.EOF || errors.Is(errB, io.ErrUnexpectedEOF)
		if errA != nil && !endA {
			return errA
		}
		if errB != nil && !endB {
			return errB
		}
		if endA || endB {
			if endA != endB || na != nb {
				// Sizes changed under us; report it as a content difference.
				if first < 0 {
					first = off - int64(max(na, nb)) + int64(min(na, nb))
				}
			}
			break
		}
	}
	if first >= 0 {
		c.addf(rel, "content differs (size %d), first at byte %d: sha256 a=%x b=%x",
			off, first, ha.Sum(nil), hb.Sum(nil))
	}
	return nil
}
