package testutil

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// GenOptions describes the tree that GenTree generates. The same options
// (including Seed) always give the same tree: same names, contents, modes,
// symlink targets and mtimes.
type GenOptions struct {
	// Seed selects the tree; every random choice and every byte derives from it.
	Seed uint64

	// SmallFiles is the number of small files, with sizes drawn uniformly
	// from 0..MaxSmallSize bytes. About one in four is compressible text,
	// the others random bytes.
	SmallFiles int
	// MaxSmallSize is the largest small-file size; 0 means 64 KiB.
	MaxSmallSize int

	// LargeFiles gives the size of each large file of random bytes
	// ("large-NN.bin" in the root of the tree).
	LargeFiles []int64

	// EmptyFiles is the number of empty files ("empty-NN"), EmptyDirs the
	// number of empty directories ("empty-dir-NN"), both spread over the tree.
	EmptyFiles int
	EmptyDirs  int

	// Depth is the nesting depth: a chain deep-1/deep-2/.../deep-<Depth> is
	// always made, and the other directories are placed at depths up to
	// Depth. 0 makes a flat tree (no directories but the empty ones).
	Depth int
	// Dirs is the number of directories besides the deep-N chain;
	// 0 means SmallFiles/32 (none when Depth is 0).
	Dirs int

	// Unicode adds entries with non-ASCII and unusual names: a directory
	// "ünïcödé-файл-文件" holding files with CJK, emoji, combining-character,
	// space and quote names, plus a few such names in the root.
	Unicode bool

	// Symlinks adds symbolic links: relative to a file, relative to a
	// directory, relative upwards (../..), absolute (/dev/null), and dangling
	// ones (relative and absolute).
	Symlinks bool

	// Modes varies permission bits: files cycle through 0644, 0600, 0755,
	// 0444, 0640, 0700, 0604 and directories through 0755, 0700, 0750, 0775
	// (no setuid/setgid/sticky bits; every directory stays writable by its
	// owner). Without Modes, files are 0644 and directories 0755.
	Modes bool
}

// DefaultGenOptions returns options for a small (about 10 MB) tree with every
// kind of entry: 200 small files, one 3 MiB large file, empty files and
// directories, depth 4, unicode names, symlinks and varied modes.
func DefaultGenOptions(seed uint64) GenOptions {
	return GenOptions{
		Seed:       seed,
		SmallFiles: 200,
		LargeFiles: []int64{3<<20 + 12345},
		EmptyFiles: 3,
		EmptyDirs:  3,
		Depth:      4,
		Unicode:    true,
		Symlinks:   true,
		Modes:      true,
	}
}

// UnicodeName is the non-ASCII name GenTree uses for a directory and a file
// when GenOptions.Unicode is set.
const UnicodeName = "ünïcödé-файл-文件"

var (
	unicodeNames = []string{
		UnicodeName + ".txt",
		"日本語ファイル.dat",
		"emoji-🎉-🐢.bin",
		"cafe\u0301-nfd.txt", // e + combining acute accent (NFD)
		"café-nfc.txt",       // precomposed é (NFC)
		"with space & 'quotes' \"double\".txt",
		"ελληνικά αρχεία",
	}
	rootOddNames = []string{UnicodeName + ".txt", "-leading-dash", ".hidden", "x"}

	fileModes = []fs.FileMode{0o644, 0o600, 0o755, 0o444, 0o640, 0o700, 0o604}
	dirModes  = []fs.FileMode{0o755, 0o700, 0o750, 0o775}

	// genBaseTime is the mtime of the first entry; entry i gets
	// genBaseTime + i*(1h + 1000003ns), so every mtime is distinct and has a
	// non-zero nanosecond part.
	genBaseTime = time.Date(2011, 3, 14, 15, 9, 26, 535897932, time.UTC)
)

const genMtimeStep = time.Hour + 1000003*time.Nanosecond

type genEntry struct {
	rel  string // slash-separated, relative to the root; "." is the root
	kind byte   // 'f' file, 'd' dir, 'l' symlink
	mode fs.FileMode
}

type generator struct {
	root    string
	opt     GenOptions
	rng     *rand.Rand     // structure: names, sizes, placement
	content *rand.ChaCha8  // bytes of small files
	entries []genEntry     // in creation order
	dirs    []string       // directories that may hold files
	depth   map[string]int // depth of each directory in dirs
	nFiles  int            // files made so far (for mode cycling)
	nDirs   int            // directories made so far (for mode cycling)
	buf     []byte
}

// GenTree generates a test tree in dir (created if missing) as described by
// opt. It is deterministic: the same options give the same tree, in any
// directory. Every entry, including dir itself, gets a distinct fixed mtime
// with a non-zero nanosecond part. The test fails on any error.
func GenTree(t testing.TB, dir string, opt GenOptions) {
	t.Helper()
	if err := genTree(dir, opt); err != nil {
		t.Fatalf("GenTree(%s): %v", dir, err)
	}
}

func chachaSeed(seed uint64, stream string) [32]byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:8], seed)
	copy(s[8:], stream)
	return s
}

func genTree(root string, opt GenOptions) error {
	if opt.MaxSmallSize <= 0 {
		opt.MaxSmallSize = 64 << 10
	}
	g := &generator{
		root:    root,
		opt:     opt,
		rng:     rand.New(rand.NewChaCha8(chachaSeed(opt.Seed, "structure"))),
		content: rand.NewChaCha8(chachaSeed(opt.Seed, "content")),
		dirs:    []string{"."},
		depth:   map[string]int{".": 0},
		buf:     make([]byte, 1<<20),
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	g.entries = append(g.entries, genEntry{rel: ".", kind: 'd', mode: 0o755})

	// The deep-N chain, then other directories at random depths <= Depth.
	parent := "."
	for i := 1; i <= opt.Depth; i++ {
		rel := path.Join(parent, fmt.Sprintf("deep-%d", i))
		if err := g.mkdir(rel, true); err != nil {
			return err
		}
		parent = rel
	}
	nDirs := opt.Dirs
	if nDirs == 0 && opt.Depth > 0 {
		nDirs = opt.SmallFiles / 32
	}
	if opt.Depth > 0 {
		for i := 0; i < nDirs; i++ {
			var p string
			for {
				p = g.dirs[g.rng.IntN(len(g.dirs))]
				if g.depth[p] < opt.Depth {
					break
				}
			}
			if err := g.mkdir(path.Join(p, fmt.Sprintf("dir-%03d", i)), true); err != nil {
				return err
			}
		}
	}

	for i := 0; i < opt.SmallFiles; i++ {
		size := g.rng.IntN(opt.MaxSmallSize + 1)
		text := g.rng.IntN(4) == 0
		name := fmt.Sprintf("file-%05d.bin", i)
		if text {
			name = fmt.Sprintf("file-%05d.txt", i)
		}
		if err := g.smallFile(path.Join(g.randomDir(), name), size, text); err != nil {
			return err
		}
	}
	for i, size := range opt.LargeFiles {
		if err := g.largeFile(fmt.Sprintf("large-%02d.bin", i), size, i); err != nil {
			return err
		}
	}
	for i := 0; i < opt.EmptyFiles; i++ {
		if err := g.smallFile(path.Join(g.randomDir(), fmt.Sprintf("empty-%02d", i)), 0, false); err != nil {
			return err
		}
	}
	if opt.Unicode {
		if err := g.mkdir(UnicodeName, false); err != nil {
			return err
		}
		for _, n := range unicodeNames {
			if err := g.smallFile(path.Join(UnicodeName, n), g.rng.IntN(4096), true); err != nil {
				return err
			}
		}
		for _, n := range rootOddNames {
			if err := g.smallFile(n, g.rng.IntN(4096), false); err != nil {
				return err
			}
		}
	}
	if opt.Symlinks {
		if err := g.symlinks(); err != nil {
			return err
		}
	}
	// Empty directories last, so that nothing is put into them.
	for i := 0; i < opt.EmptyDirs; i++ {
		if err := g.mkdir(path.Join(g.randomDir(), fmt.Sprintf("empty-dir-%02d", i)), false); err != nil {
			return err
		}
	}

	// Modes, then mtimes (setting a child's mtime or mode leaves its
	// parent's mtime alone).
	for _, e := range g.entries {
		if e.kind == 'l' {
			continue
		}
		if err := os.Chmod(g.abs(e.rel), e.mode); err != nil {
			return err
		}
	}
	for i, e := range g.entries {
		ts := unix.NsecToTimespec(genBaseTime.Add(time.Duration(i) * genMtimeStep).UnixNano())
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, g.abs(e.rel), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "utimensat", Path: g.abs(e.rel), Err: err}
		}
	}
	return nil
}

func (g *generator) abs(rel string) string {
	return filepath.Join(g.root, filepath.FromSlash(rel))
}

func (g *generator) randomDir() string {
	return g.dirs[g.rng.IntN(len(g.dirs))]
}

func (g *generator) fileMode() fs.FileMode {
	m := fs.FileMode(0o644)
	if g.opt.Modes {
		m = fileModes[g.nFiles%len(fileModes)]
	}
	g.nFiles++
	return m
}

func (g *generator) mkdir(rel string, holdsFiles bool) error {
	m := fs.FileMode(0o755)
	if g.opt.Modes {
		m = dirModes[g.nDirs%len(dirModes)]
	}
	g.nDirs++
	if err := os.Mkdir(g.abs(rel), 0o755); err != nil {
		return err
	}
	g.entries = append(g.entries, genEntry{rel: rel, kind: 'd', mode: m})
	if holdsFiles {
		g.dirs = append(g.dirs, rel)
		g.depth[rel] = strings.Count(rel, "/") + 1
	}
	return nil
}

var genWords = strings.Fields(`the quick brown fox jumps over lazy dog backup
restore snapshot chunk blob pack index tree data key lock repository cairn
stone trail mountain river 0 1 2 42 1024 error warning info debug`)

// fillText fills b with space-separated words (compressible text).
func (g *generator) fillText(b []byte) {
	for i := 0; i < len(b); {
		w := genWords[g.rng.IntN(len(genWords))]
		i += copy(b[i:], w)
		if i < len(b) {
			if g.rng.IntN(12) == 0 {
				b[i] = '\n'
			} else {
				b[i] = ' '
			}
			i++
		}
	}
}

func (g *generator) smallFile(rel string, size int, text bool) error {
	if size > len(g.buf) {
		g.buf = make([]byte, size)
	}
	b := g.buf[:size]
	if text {
		g.fillText(b)
	} else {
		_, _ = g.content.Read(b)
	}
	if err := os.WriteFile(g.abs(rel), b, 0o600); err != nil {
		return err
	}
	g.entries = append(g.entries, genEntry{rel: rel, kind: 'f', mode: g.fileMode()})
	return nil
}

func (g *generator) largeFile(rel string, size int64, idx int) error {
	src := rand.NewChaCha8(chachaSeed(g.opt.Seed^uint64(idx+1)<<32, "large"))
	f, err := os.OpenFile(g.abs(rel), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	for left := size; left > 0; {
		b := g.buf
		if int64(len(b)) > left {
			b = b[:left]
		}
		_, _ = src.Read(b)
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
		left -= int64(len(b))
	}
	if err := f.Close(); err != nil {
		return err
	}
	g.entries = append(g.entries, genEntry{rel: rel, kind: 'f', mode: g.fileMode()})
	return nil
}

func (g *generator) symlink(target, rel string) error {
	if err := os.Symlink(target, g.abs(rel)); err != nil {
		return err
	}
	g.entries = append(g.entries, genEntry{rel: rel, kind: 'l'})
	return nil
}

func (g *generator) symlinks() error {
	if err := g.smallFile("link-target.txt", 100, true); err != nil {
		return err
	}
	links := [][2]string{ // target, name
		{"link-target.txt", "link-rel"},
		{"does-not-exist/nowhere", "link-dangling"},
		{"/dev/null", "link-abs"},
		{"/nonexistent-cairn-testutil/dangling", "link-abs-dangling"},
	}
	// A link to a directory, and one from the deepest directory upwards.
	deepest := "."
	for _, d := range g.dirs {
		if g.depth[d] > g.depth[deepest] {
			deepest = d
		}
	}
	if deepest != "." {
		links = append(links,
			[2]string{deepest, "link-dir"},
			[2]string{strings.Repeat("../", g.depth[deepest]) + "link-target.txt", path.Join(deepest, "link-up")},
		)
	}
	if g.opt.Unicode {
		links = append(links, [2]string{UnicodeName + ".txt", "link-" + UnicodeName})
	}
	for _, l := range links {
		if err := g.symlink(l[0], l[1]); err != nil {
			return err
		}
	}
	return nil
}
