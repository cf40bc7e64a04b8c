package main

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/fusefs"
)

// browseSetup backs makeData up twice; between the two, a file is added,
// one changed and one removed. It returns the data dir and both IDs.
func browseSetup(t *testing.T) (*testEnv, string, string, string) {
	t.Helper()
	e := newInitEnv(t)
	data := e.makeData()
	e.ok("backup", data, "--time", "2024-01-02 10:00:00")
	e.writeFile("data/new.txt", "brand new\n")
	e.writeFile("data/a.txt", "alpha, changed\n")
	if err := os.Remove(filepath.Join(data, "sub", "deep", "d.log")); err != nil {
		t.Fatal(err)
	}
	e.ok("backup", data, "--time", "2024-01-03 10:00:00")
	sns := e.snapshots()
	return e, data, sns[0]["id"].(string), sns[1]["id"].(string)
}

func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestBrowseLs(t *testing.T) {
	e, data, _, id2 := browseSetup(t)
	lines := strings.Fields(e.ok("ls", "latest", data).stdout)
	want := []string{data + "/B.JPG", data + "/a.txt", data + "/link", data + "/new.txt", data + "/sub"}
	if !slices.Equal(lines, want) {
		t.Fatalf("ls latest %s:\n got %q\nwant %q", data, lines, want)
	}
	// Without a path, ls lists the whole snapshot, as restic ls does; with
	// "/" only the top.
	var wantAll []string
	for p := data; p != "/"; p = filepath.Dir(p) {
		wantAll = append([]string{p}, wantAll...)
	}
	wantAll = append(wantAll, data+"/B.JPG", data+"/a.txt", data+"/link", data+"/new.txt", data+"/sub", data+"/sub/c.txt", data+"/sub/deep")
	if all := strings.Fields(e.ok("ls", id2[:8]).stdout); !slices.Equal(all, wantAll) {
		t.Errorf("ls of the whole snapshot:\n got %q\nwant %q", all, wantAll)
	}
	if top := strings.TrimSpace(e.ok("ls", id2[:8], "/").stdout); top != "/"+strings.Split(data, "/")[1] {
		t.Errorf("ls of the root: %q", top)
	}
	rec := e.ok("ls", "--recursive", "latest", data).stdout
	if !strings.Contains(rec, data+"/sub/c.txt\n") || strings.Contains(rec, "d.log") {
		t.Errorf("ls --recursive:\n%s", rec)
	}
	long := e.ok("ls", "-l", "latest", data).stdout
	if !strings.Contains(long, data+"/link -> a.txt") || !strings.Contains(long, "-rw-r--r-- ") || !strings.Contains(long, " 10 ") {
		t.Errorf("ls -l:\n%s", long)
	}
	js := jsonLines(t, e.ok("ls", "--json", "latest", data+"/new.txt").stdout)
	if len(js) != 2 || js[0]["struct_type"] != "snapshot" || js[0]["id"] != id2 {
		t.Fatalf("ls --json: %v", js)
	}
	if n := js[1]; n["struct_type"] != "node" || n["path"] != data+"/new.txt" || n["size"] != float64(10) || n["type"] != "file" {
		t.Errorf("ls --json node: %v", n)
	}
}

func TestBrowseFind(t *testing.T) {
	e, data, id1, id2 := browseSetup(t)
	out := e.ok("find", "*.txt").stdout
	// Newest first, one group per snapshot.
	i1, i2 := strings.Index(out, "snapshot "+id1[:8]), strings.Index(out, "snapshot "+id2[:8])
	if i1 < 0 || i2 < 0 || i2 > i1 || !strings.Contains(out[i2:i1], data+"/new.txt\n") || strings.Contains(out[i1:], "new.txt") {
		t.Fatalf("find *.txt:\n%s", out)
	}
	if out := e.ok("find", "b.jpg").stdout; out != "" {
		t.Errorf("case-sensitive find matched:\n%s", out)
	}
	var res []findResultJSON
	if err := json.Unmarshal([]byte(e.ok("find", "--json", "-i", "b.jpg", "--snapshot", id1[:8]).stdout), &res); err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Snapshot != id1 || res[0].Hits != 1 || res[0].Matches[0].Path != data+"/B.JPG" {
		t.Fatalf("find --json -i: %+v", res)
	}
	// The tree of the first snapshot is its root.
	tree := e.snapshots()[0]["tree"].(string)
	out = e.ok("find", "--tree", tree[:10]).stdout
	if !strings.Contains(out, "snapshot "+id1[:8]) || strings.Contains(out, id2[:8]) || !strings.Contains(out, "/ (tree "+tree[:8]+")") {
		t.Errorf("find --tree:\n%s", out)
	}
	// Time bounds on mtimes: nothing was modified in the future.
	if out := e.ok("find", "--oldest", time.Now().Add(time.Hour).Format("2006-01-02 15:04:05"), "*").stdout; out != "" {
		t.Errorf("find --oldest in the future:\n%s", out)
	}
	e.fails(exitFailure, e.run("find", "--newest", "yesterday", "*"), "--newest", "not a time")
	e.fails(exitFailure, e.run("find", "--blob", "--tree", "abc"), "not both")
	e.fails(exitFailure, e.run("find"), "at least one pattern")
}

func TestBrowseDump(t *testing.T) {
	e, data, _, _ := browseSetup(t)
	if got := e.ok("dump", "latest", data+"/a.txt").stdout; got != "alpha, changed\n" {
		t.Errorf("dump of a file: %q", got)
	}
	// tar on stdout, entries relative to the parent of the directory.
	tr := tar.NewReader(strings.NewReader(e.ok("dump", "latest", data+"/sub").stdout))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if !slices.Equal(names, []string{"sub/", "sub/c.txt", "sub/deep/"}) {
		t.Errorf("tar entries %q", names)
	}
	// zip into a file.
	target := filepath.Join(e.dir, "data.zip")
	e.ok("dump", "--archive", "zip", "--target", target, "latest", data)
	zr, err := zip.OpenReader(target)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	found := false
	for _, f := range zr.File {
		if f.Name == "data/new.txt" {
			rc, _ := f.Open()
			b, _ := io.ReadAll(rc)
			rc.Close()
			found = string(b) == "brand new\n"
		}
	}
	if !found {
		t.Error("zip lacks data/new.txt with its content")
	}
}

func TestBrowseDiff(t *testing.T) {
	e, data, id1, id2 := browseSetup(t)
	out := e.ok("diff", id1[:8], id2[:8]).stdout
	for _, want := range []string{
		"comparing snapshot " + id1[:8] + " to " + id2[:8],
		"M    " + data + "/a.txt\n",
		"+    " + data + "/new.txt\n",
		"-    " + data + "/sub/deep/d.log\n",
		"Files:           1 new,     1 removed,     1 changed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diff output lacks %q:\n%s", want, out)
		}
	}
	js := jsonLines(t, e.ok("diff", "--json", id1, "latest").stdout)
	if len(js) != 4 {
		t.Fatalf("diff --json: %v", js)
	}
	for _, c := range js[:3] {
		if c["message_type"] != "change" || c["modifier"] == "" {
			t.Errorf("change line %v", c)
		}
	}
	st := js[3]
	added, _ := st["added"].(map[string]any)
	if st["message_type"] != "statistics" || st["source_snapshot"] != id1 || st["changed_files"] != float64(1) ||
		added["files"] != float64(1) || added["bytes"] != float64(len("brand new\n")+len("alpha, changed\n")) {
		t.Errorf("statistics line %v", st)
	}
	meta := e.ok("diff", "--metadata", id1, id2).stdout
	if !strings.Contains(meta, "U    "+data+"/\n") {
		t.Errorf("diff --metadata does not show the changed directory:\n%s", meta)
	}
}

func TestBrowseStats(t *testing.T) {
	e, _, _, _ := browseSetup(t)
	var st statsJSON
	for _, mode := range []string{"restore-size", "files-by-contents", "raw-data", "blobs-per-file"} {
		res := e.ok("stats", "--mode", mode)
		if !strings.Contains(res.stdout, "Stats in "+mode+" mode") {
			t.Errorf("stats --mode %s:\n%s", mode, res.stdout)
		}
		if err := json.Unmarshal([]byte(e.ok("stats", "--json", "--mode", mode).stdout), &st); err != nil {
			t.Fatal(err)
		}
		if st.SnapshotsCount != 2 || st.TotalSize == 0 {
			t.Errorf("stats --mode %s: %+v", mode, st)
		}
	}
	// files-by-contents: a.txt (twice), B.JPG, c.txt, d.log, new.txt; the
	// symlink is no file.
	e.ok("stats", "--json", "--mode", "files-by-contents")
	if err := json.Unmarshal([]byte(e.ok("stats", "--json", "--mode", "files-by-contents").stdout), &st); err != nil || st.TotalFileCount != 6 {
		t.Errorf("files-by-contents: %+v, %v", st, err)
	}
	e.fails(exitFailure, e.run("stats", "--mode", "bogus"), "bogus", "files-by-contents")
}

func TestBrowseErrors(t *testing.T) {
	e, data, id1, _ := browseSetup(t)
	for _, args := range [][]string{{"ls", "ffffffff"}, {"dump", "ffffffff", "/"}, {"diff", "ffffffff", id1}, {"find", "-s", "ffffffff", "x"}} {
		res := e.run(args...)
		e.fails(exitFailure, res, "ffffffff", "no matching ID")
		oneErrorLine(t, res)
	}
	// An ambiguous prefix: a second snapshot file sharing the first 8
	// characters.
	twin := id1[:8] + strings.Repeat("0", 56)
	buf, _ := os.ReadFile(filepath.Join(e.repo, "snapshots", id1))
	if err := os.WriteFile(filepath.Join(e.repo, "snapshots", twin), buf, 0o600); err != nil {
		t.Fatal(err)
	}
	e.fails(exitFailure, e.run("ls", id1[:8]), "ambiguous", "give more characters")
	e.fails(exitFailure, e.run("diff", id1[:8], "latest"), "ambiguous")
	os.Remove(filepath.Join(e.repo, "snapshots", twin))

	// Paths that are not in the snapshot; dump leaves no target behind.
	res := e.run("ls", "latest", data+"/nope")
	e.fails(exitFailure, res, "path not found", data+"/nope")
	oneErrorLine(t, res)
	target := filepath.Join(e.dir, "out.tar")
	e.fails(exitFailure, e.run("dump", "--target", target, "latest", data+"/sub/deep/d.log"), "path not found")
	if _, err := os.Stat(target); err == nil {
		t.Error("dump of a missing path created the target")
	}
	e.fails(exitFailure, e.run("dump", "--archive", "rar", "latest", data), "rar", "tar or zip")
	e.fails(exitFailure, e.run("dump", "latest"), "dump expects")
	e.fails(exitFailure, e.run("ls"), "ls expects")

	// Mount points: missing, a file, busy.
	e.fails(exitFailure, e.run("mount", filepath.Join(e.dir, "no-such-dir")), "does not exist")
	e.fails(exitFailure, e.run("mount", filepath.Join(data, "a.txt")), "not a directory")
	mnt := filepath.Join(e.dir, "mnt")
	os.Mkdir(mnt, 0o755)
	m := browseMount(t, e, mnt)
	res = e.run("mount", mnt)
	e.fails(exitFailure, res, "busy", mnt)
	oneErrorLine(t, res)
	// fusermount3 -u ends the first mount; it exits 0 and removes its lock.
	if out, err := exec.Command("fusermount3", "-u", mnt).CombinedOutput(); err != nil {
		t.Fatalf("fusermount3 -u: %v: %s", err, out)
	}
	if res := m.wait(t); res.code != 0 || !strings.Contains(res.stdout, "was unmounted") {
		t.Fatalf("mount after fusermount3 -u: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if locks := e.repoFiles("locks"); len(locks) != 0 {
		t.Errorf("mount left locks: %v", locks)
	}
}

type runningMount struct {
	cancel context.CancelFunc
	done   chan result
}

func (m *runningMount) wait(t *testing.T) result {
	t.Helper()
	select {
	case res := <-m.done:
		return res
	case <-time.After(20 * time.Second):
		t.Fatal("cairn mount did not return")
	}
	return result{}
}

// browseMount runs `cairn mount` in the background until the mount is
// served; the test's cleanup ends it.
func browseMount(t *testing.T, e *testEnv, mnt string) *runningMount {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &runningMount{cancel: cancel, done: make(chan result, 1)}
	go func() { m.done <- e.runCtx(ctx, nil, "mount", mnt) }()
	t.Cleanup(func() {
		cancel()
		if busy, _ := fusefs.IsMountPoint(mnt); busy {
			exec.Command("fusermount3", "-u", "-z", mnt).Run()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(mnt, "snapshots")); err == nil {
			return m
		}
		select {
		case res := <-m.done:
			t.Fatalf("cairn mount ended: exit %d\n%s%s", res.code, res.stdout, res.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("mount did not come up")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBrowseMountInterrupt(t *testing.T) {
	e, data, _, _ := browseSetup(t)
	mnt := filepath.Join(e.dir, "mnt")
	os.Mkdir(mnt, 0o755)
	m := browseMount(t, e, mnt)
	got, err := os.ReadFile(filepath.Join(mnt, "snapshots", "latest", data, "new.txt"))
	if err != nil || !bytes.Equal(got, []byte("brand new\n")) {
		t.Fatalf("file through the mount: %q, %v", got, err)
	}
	// Ctrl-C: the command unmounts and exits 0.
	m.cancel()
	if res := m.wait(t); res.code != 0 || !strings.Contains(res.stdout, "unmounted "+mnt) {
		t.Fatalf("mount after interrupt: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if busy, err := fusefs.IsMountPoint(mnt); busy || err != nil {
		t.Fatalf("still mounted after interrupt (%v)", err)
	}
}
