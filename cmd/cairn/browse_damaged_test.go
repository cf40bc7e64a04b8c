package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sys/unix"
)

// damagedRepo holds an older clean snapshot and a newer one in which
// /data/bad's tree is not JSON and /data/missing's tree is in no pack.
func damagedRepo(t *testing.T) (e *testEnv, clean, damaged string) {
	e = newInitEnv(t)
	c := newCrafter(e)
	clean = c.snapshot(c.dir("", c.dir("data", c.file("a.txt", "alpha"), c.dir("good", c.file("x.txt", "x")), c.file("z.txt", "z"))),
		craftTime)
	damaged = c.snapshot(c.dir("", c.dir("data",
		c.file("a.txt", "alpha 2"),
		c.rawDir("bad", []byte("{not a tree")),
		c.dir("good", c.file("x.txt", "x"), c.file("y.txt", "y")),
		c.missingDir("missing"),
		c.file("z.txt", "z"))), craftTime.Add(time.Hour))
	return e, clean, damaged
}

// stderrNames asserts that stderr has a line naming each of paths.
func stderrNames(t *testing.T, res result, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if !slices.ContainsFunc(strings.Split(res.stderr, "\n"), func(l string) bool { return strings.Contains(l, p+":") }) {
			t.Errorf("stderr does not name %s:\n%s", p, res.stderr)
		}
	}
}

func TestBrowseDamagedTrees(t *testing.T) {
	e, clean, damaged := damagedRepo(t)

	res := e.run("ls", damaged[:8])
	e.fails(exitFailure, res, "2 damaged items", "left out", "cairn check")
	stderrNames(t, res, "/data/bad", "/data/missing")
	want := []string{"/data", "/data/a.txt", "/data/bad", "/data/good", "/data/good/x.txt", "/data/good/y.txt", "/data/missing", "/data/z.txt"}
	if got := strings.Fields(res.stdout); !slices.Equal(got, want) {
		t.Errorf("ls of a damaged snapshot:\n got %q\nwant %q", got, want)
	}
	// A path below the damage is listed without complaint.
	e.ok("ls", damaged[:8], "/data/good")

	// find goes on through all snapshots and trees.
	res = e.run("find", "*.txt")
	e.fails(exitFailure, res, "2 damaged items")
	stderrNames(t, res, "snapshot "+damaged[:8]+": /data/bad", "snapshot "+damaged[:8]+": /data/missing")
	for _, want := range []string{"snapshot " + damaged[:8], "/data/good/y.txt", "snapshot " + clean[:8], "/data/good/x.txt", "/data/z.txt"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("find lacks %q:\n%s", want, res.stdout)
		}
	}
	// An ID search, too: x.txt's blob is in both snapshots.
	blob := repo.Hash([]byte("x")).String()
	res = e.run("find", "--blob", blob[:12])
	e.fails(exitFailure, res, "2 damaged items")
	if strings.Count(res.stdout, "/data/good/x.txt (blob "+blob[:8]+")") != 2 {
		t.Errorf("find --blob:\n%s", res.stdout)
	}

	// diff shows what it can compare.
	res = e.run("diff", clean[:8], damaged[:8])
	e.fails(exitFailure, res, "damaged item")
	stderrNames(t, res, "/data/bad", "/data/missing")
	for _, want := range []string{"M    /data/a.txt\n", "+    /data/good/y.txt\n", "+    /data/bad/\n", "Files:"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("diff lacks %q:\n%s", want, res.stdout)
		}
	}

	// dump writes everything else.
	res = e.run("dump", damaged[:8], "/data")
	e.fails(exitFailure, res, "2 damaged items")
	stderrNames(t, res, "/data/bad", "/data/missing")
	names := tarNames(t, []byte(res.stdout))
	want = []string{"data/", "data/a.txt", "data/bad/", "data/good/", "data/good/x.txt", "data/good/y.txt", "data/missing/", "data/z.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("dump of a damaged snapshot:\n got %q\nwant %q", names, want)
	}
}

// TestFindDamagedRootGoesOn: the newest snapshot's root tree cannot be
// loaded; find reports it and still searches the older ones.
func TestFindDamagedRootGoesOn(t *testing.T) {
	e, clean, damaged := damagedRepo(t)
	c := newCrafter(e)
	broken := c.snapshot(c.missingDir(""), craftTime.Add(2*time.Hour))
	res := e.run("find", "x.txt")
	e.fails(exitFailure, res, "3 damaged items")
	stderrNames(t, res, "snapshot "+broken[:8]+": /")
	if strings.Count(res.stdout, "/data/good/x.txt") != 2 || !strings.Contains(res.stdout, clean[:8]) || !strings.Contains(res.stdout, damaged[:8]) {
		t.Errorf("find did not go on past the broken snapshot:\n%s", res.stdout)
	}
}

func tarNames(t *testing.T, archive []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		names = append(names, h.Name)
	}
}

func zipNames(t *testing.T, archive []byte) []string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatalf("read zip: %v", err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	return names
}

// assertSafeNames fails for any entry name that is absolute or has an
// empty, "." or ".." component (a directory's trailing "/" aside), or
// holds NUL, or in a zip a backslash (a separator to Windows extractors;
// in tar on Linux it is part of a name).
func assertSafeNames(t *testing.T, what string, names []string) {
	t.Helper()
	if len(names) == 0 {
		t.Fatalf("%s: no entries", what)
	}
	for _, n := range names {
		bad := strings.HasPrefix(n, "/") || strings.ContainsRune(n, 0) || (what == "zip" && strings.ContainsRune(n, '\\'))
		for _, c := range strings.Split(strings.TrimSuffix(n, "/"), "/") {
			bad = bad || c == "" || c == "." || c == ".."
		}
		if bad || !filepath.IsLocal(strings.TrimSuffix(n, "/")) {
			t.Errorf("%s: unsafe entry name %q", what, n)
		}
	}
}

// hostileTree is /data with a clean file next to /data/evil, which holds
// names no file system has: "..", ".", names with "/" and NUL, a backslash
// path, a symlink to a directory outside followed by a directory of the
// same name, and /data/evil2 with an empty name.
func hostileTree(c *crafter, outside string) *snapshot.Node {
	evil := c.dir("evil",
		c.link("d", outside),
		c.dir("d", c.file("inner.txt", "pwned via d")),
		c.file("..", "pwned via .."),
		c.file(".", "dot"),
		c.file("../../../../../../"+strings.TrimPrefix(outside, "/")+"/slash.txt", "pwned via slash"),
		c.file("nul\x00name", "nul"),
		c.file(`..\..\win.txt`, "backslash"),
		c.link("abs", "/etc/passwd"), // an absolute target is data
	)
	evil2 := c.dir("evil2", c.file("", "empty name"), c.file("fine.txt", "fine"))
	return c.dir("", c.dir("data", c.file("ok.txt", "ok"), evil, evil2))
}

func TestDumpHostileNames(t *testing.T) {
	e := newInitEnv(t)
	c := newCrafter(e)
	outside := filepath.Join(e.dir, "sibling")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeFile("sibling/keep.txt", "keep me")
	before := dirState(t, outside)
	id := c.snapshot(hostileTree(c, outside), craftTime)

	for _, format := range []string{"tar", "zip"} {
		target := filepath.Join(e.dir, "out."+format)
		res := e.run("dump", "--archive", format, "--target", target, id[:8], "/data")
		e.fails(exitFailure, res, "damaged item", "left out")
		stderrNames(t, res, "/data/evil", "/data/evil2")
		buf, err := os.ReadFile(target)
		if err != nil {
			t.Fatalf("dump --target kept no archive: %v", err)
		}
		var names []string
		if format == "tar" {
			names = tarNames(t, buf)
		} else {
			names = zipNames(t, buf)
		}
		assertSafeNames(t, format, names)
		if !slices.Contains(names, "data/ok.txt") {
			t.Errorf("%s lacks the clean file data/ok.txt: %q", format, names)
		}
		if slices.Contains(names, "data/evil/d/inner.txt") {
			t.Errorf("%s has an entry below the repeated name d: %q", format, names)
		}
		if format == "tar" {
			// The real tar extracts it without leaving its directory.
			into := filepath.Join(e.dir, "extract")
			if err := os.MkdirAll(into, 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("tar", "-x", "-f", target, "-C", into).CombinedOutput(); err != nil {
				t.Fatalf("tar -x: %v\n%s", err, out)
			}
			if got := readFile(t, filepath.Join(into, "data", "ok.txt")); got != "ok" {
				t.Errorf("extracted ok.txt: %q", got)
			}
		}
		if after := dirState(t, outside); !mapsEqual(before, after) {
			t.Fatalf("%s: the directory outside changed:\nbefore %v\nafter  %v", format, before, after)
		}
	}
}

// TestClusterDownloadHostileNames: a backup whose /resources holds
// hostile names downloads without them, exit 1.
func TestClusterDownloadHostileNames(t *testing.T) {
	e := newInitEnv(t)
	c := newCrafter(e)
	res := c.dir("resources",
		c.dir("cluster", c.dir("namespaces", c.file("shop.yaml", "kind: Namespace\n"))),
		c.dir("namespaces", c.dir("shop", c.dir("configmaps",
			c.file("..", "x"), c.file("../../../../../../etc/cron.d/x.yaml", "x"), c.file("cfg.yaml", "kind: ConfigMap\n")))))
	c.snapshot(c.dir("", res), craftTime, "backup=evil")
	t.Chdir(e.dir)
	r := e.run("cluster", "download", "evil", "--output", "evil.tgz")
	e.fails(exitFailure, r, "damaged item")
	stderrNames(t, r, "/resources/namespaces/shop/configmaps")
	f, err := os.Open(filepath.Join(e.dir, "evil.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	buf, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	names := tarNames(t, buf)
	assertSafeNames(t, "download", names)
	if !slices.Contains(names, "resources/cluster/namespaces/shop.yaml") {
		t.Errorf("download lacks the clean manifest: %q", names)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestLatestDamagedSnapshot: the newest snapshot file is damaged. latest
// must not fall back to the older snapshot; listings warn, show the rest
// and exit 1.
func TestLatestDamagedSnapshot(t *testing.T) {
	e := newInitEnv(t)
	c := newCrafter(e)
	old := c.snapshot(c.dir("", c.dir("data", c.file("old.txt", "old"))), craftTime)
	newest := c.snapshot(c.dir("", c.dir("data", c.file("new.txt", "new"))), craftTime.Add(time.Hour))
	damageSnapshotFile(t, e, newest)

	target := filepath.Join(e.dir, "restored")
	for _, args := range [][]string{
		{"ls", "latest"},
		{"dump", "latest", "/data/old.txt"},
		{"find", "-s", "latest", "*"},
		{"diff", old[:8], "latest"},
		{"restore", "latest", "--target", target},
	} {
		res := e.run(args...)
		e.fails(exitFailure, res, `"latest"`, "snapshot "+newest[:8]+" cannot be read", newest, "name a snapshot by ID", "cairn forget "+newest[:8])
		oneErrorLine(t, res)
		if strings.Contains(res.stdout, "old.txt") {
			t.Errorf("%v fell back to the older snapshot:\n%s", args, res.stdout)
		}
	}
	if _, err := os.Stat(target); err == nil {
		t.Error("restore latest wrote its target")
	}
	// Naming the good snapshot works.
	if out := e.ok("ls", old[:8]).stdout; !strings.Contains(out, "/data/old.txt") {
		t.Errorf("ls by ID:\n%s", out)
	}

	// Listings: a warning naming the file, the rest shown, exit 1.
	for _, args := range [][]string{{"snapshots"}, {"find", "*.txt"}, {"forget", "--keep-last", "5", "--dry-run"}} {
		res := e.run(args...)
		e.fails(exitFailure, res, "1 snapshot file could not be read")
		if !strings.Contains(res.stderr, "warning: snapshot "+newest[:8]+" cannot be read: load snapshot/"+newest) {
			t.Errorf("%v: no warning naming the file:\n%s", args, res.stderr)
		}
		if !strings.Contains(res.stdout, old[:8]) {
			t.Errorf("%v does not show the readable snapshot:\n%s", args, res.stdout)
		}
	}
	res := e.run("snapshots", "--json")
	e.fails(exitFailure, res, "could not be read")
	var sns []map[string]any
	if err := jsonUnmarshal(res.stdout, &sns); err != nil || len(sns) != 1 || sns[0]["id"] != old {
		t.Errorf("snapshots --json with a damaged file: %v %v", sns, err)
	}
}

// openPTY opens a pseudo-terminal pair: what is written to the returned
// terminal end can be read from the controlling end.
func openPTY(t *testing.T) (ctl, tty *os.File) {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	fd := int(ctl.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Raw output: no "\n" -> "\r\n", so that what arrives is what was written.
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Oflag &^= unix.OPOST
	if err := unix.IoctlSetTermios(int(tty.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close(); ctl.Close() })
	return ctl, tty
}

// runOnTerminal runs cairn with stdout on a real terminal and returns what
// the terminal received.
func (e *testEnv) runOnTerminal(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctl, tty := openPTY(t)
	got := make(chan string, 1)
	go func() {
		var buf bytes.Buffer
		io.Copy(&buf, ctl) // ends with EIO once the terminal end is closed
		got <- buf.String()
	}()
	var stderr syncBuffer
	env := e.cliEnv(nil, &stderr, nil)
	env.stdout = tty
	code := run(context.Background(), args, env)
	tty.Close()
	select {
	case s := <-got:
		return code, s
	case <-time.After(10 * time.Second):
		t.Fatal("no output from the terminal")
	}
	return 0, ""
}

// TestBrowseEscapesNamesOnTerminal: names with control characters or
// invalid UTF-8 reach a terminal quoted; piped output and --json are exact.
func TestBrowseEscapesNamesOnTerminal(t *testing.T) {
	e := newInitEnv(t)
	c := newCrafter(e)
	esc := "evil\x1b[2J\x1b]0;owned\x07name"
	bad := "latin1-\xe9t\xe9"
	id := c.snapshot(c.dir("", c.dir("data", c.file(esc, "x"), c.file(bad, "y"), c.file("plain é.txt", "z"),
		c.link("lnk", "\x1b[31mred"))), craftTime)

	code, out := e.runOnTerminal(t, "ls", id[:8])
	if code != 0 {
		t.Fatalf("ls on a terminal: exit %d", code)
	}
	if strings.ContainsAny(out, "\x1b\x07") || !utf8.ValidString(out) {
		t.Errorf("control characters or invalid UTF-8 reached the terminal: %q", out)
	}
	for _, want := range []string{strconv.Quote("/data/" + esc), strconv.Quote("/data/" + bad), "/data/plain é.txt\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %s:\n%q", want, out)
		}
	}
	_, out = e.runOnTerminal(t, "ls", "-l", id[:8], "/data")
	if !strings.Contains(out, "-> "+strconv.Quote("\x1b[31mred")) || strings.Contains(out, "\x1b") {
		t.Errorf("ls -l on a terminal: %q", out)
	}
	_, out = e.runOnTerminal(t, "find", "*name*")
	if !strings.Contains(out, strconv.Quote("/data/"+esc)) || strings.Contains(out, "\x1b") {
		t.Errorf("find on a terminal: %q", out)
	}

	// Piped: the exact bytes.
	if got := e.ok("ls", id[:8]).stdout; !strings.Contains(got, "/data/"+esc+"\n") || !strings.Contains(got, "/data/"+bad+"\n") {
		t.Errorf("piped ls changed the names: %q", got)
	}
	if got := e.ok("find", "*name*").stdout; !strings.Contains(got, "/data/"+esc+"\n") {
		t.Errorf("piped find changed the name: %q", got)
	}
	// --json on a terminal: JSON's own escaping, nothing else.
	_, out = e.runOnTerminal(t, "ls", "--json", id[:8], "/data/"+esc)
	var n map[string]any
	if err := json.Unmarshal([]byte(strings.Split(strings.TrimSpace(out), "\n")[1]), &n); err != nil || n["name"] != esc {
		t.Errorf("ls --json on a terminal: %q (%v)", out, err)
	}
}

// TestMountDamagedExit: cairn mount names what it could not read when it
// meets it and exits 1 when unmounted.
func TestMountDamagedExit(t *testing.T) {
	e, _, damaged := damagedRepo(t)
	mnt := filepath.Join(e.dir, "mnt")
	os.Mkdir(mnt, 0o755)
	m := browseMount(t, e, mnt)
	data := filepath.Join(mnt, "ids", damaged[:8], "data")
	if _, err := os.ReadDir(filepath.Join(data, "bad")); !errors.Is(err, syscall.EIO) {
		t.Errorf("damaged directory through the mount: %v, want EIO", err)
	}
	if got, err := os.ReadFile(filepath.Join(data, "good", "y.txt")); err != nil || string(got) != "y" {
		t.Errorf("good/y.txt through the mount: %q, %v", got, err)
	}
	m.cancel()
	res := m.wait(t)
	e.fails(exitFailure, res, "1 damaged item was left out")
	if !strings.Contains(res.stderr, "/ids/"+damaged[:8]+"/data/bad: cannot read this directory") {
		t.Errorf("mount did not name the damaged directory:\n%s", res.stderr)
	}
}
