package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestBackupSnapshotsRestore(t *testing.T) {
	e := newInitEnv(t)
	if got := e.repoFiles("keys"); len(got) != 1 {
		t.Fatalf("init wrote %d keys, want 1", len(got))
	}
	data := e.makeData()

	res := e.ok("backup", data, "--tag", "one,two", "--time", "2024-01-02 15:04:05")
	if !strings.Contains(res.stdout, "no parent snapshot found") {
		t.Errorf("first backup should have no parent:\n%s", res.stdout)
	}
	m := regexp.MustCompile(`snapshot ([0-9a-f]{8}) saved`).FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("no \"snapshot ID saved\" line:\n%s", res.stdout)
	}
	if !strings.Contains(res.stdout, "Files:") || !strings.Contains(res.stdout, "4 new") {
		t.Errorf("summary does not report 4 new files:\n%s", res.stdout)
	}
	if got := e.repoFiles("locks"); len(got) != 0 {
		t.Errorf("backup left locks behind: %v", got)
	}

	sns := e.snapshots()
	if len(sns) != 1 {
		t.Fatalf("%d snapshots, want 1", len(sns))
	}
	sn := sns[0]
	id, _ := sn["id"].(string)
	if len(id) != 64 || sn["short_id"] != id[:8] || id[:8] != m[1] {
		t.Errorf("id %q / short_id %v do not match the saved snapshot %s", id, sn["short_id"], m[1])
	}
	if sn["hostname"] != "testhost" {
		t.Errorf("hostname %v, want testhost (from CAIRN_HOST)", sn["hostname"])
	}
	if tags := sn["tags"].([]any); len(tags) != 2 || tags[0] != "one" || tags[1] != "two" {
		t.Errorf("tags %v, want [one two]", tags)
	}
	if !strings.HasPrefix(sn["time"].(string), "2024-01-02T15:04:05") {
		t.Errorf("time %v does not come from --time", sn["time"])
	}

	// A second backup finds the first as parent and reads nothing again.
	res = e.ok("backup", "--json", data)
	var sum backupSummaryJSON
	if err := json.Unmarshal([]byte(res.stdout), &sum); err != nil {
		t.Fatalf("backup --json: %v\n%s", err, res.stdout)
	}
	if sum.MessageType != "summary" || sum.FilesUnmodified != 4 || sum.FilesNew != 0 || len(sum.SnapshotID) != 64 {
		t.Errorf("second backup summary %+v: want 4 unmodified files and a snapshot ID", sum)
	}
	sns = e.snapshots()
	if len(sns) != 2 || sns[1]["parent"] != id {
		t.Fatalf("second snapshot's parent is %v, want %s", sns[1]["parent"], id)
	}
	// --force ignores the parent.
	res = e.ok("backup", "--force", data)
	if !strings.Contains(res.stdout, "no parent snapshot found") {
		t.Errorf("--force should use no parent:\n%s", res.stdout)
	}

	// Full restore recreates the absolute paths under the target.
	target := filepath.Join(e.dir, "restore")
	res = e.ok("restore", id[:8], "--target", target)
	if !strings.Contains(res.stdout, "restored 4 files") {
		t.Errorf("restore summary:\n%s", res.stdout)
	}
	got := filepath.Join(target, data)
	if readFile(t, filepath.Join(got, "sub/c.txt")) != strings.Repeat("cairn ", 50000) {
		t.Error("restored sub/c.txt differs")
	}
	if l, err := os.Readlink(filepath.Join(got, "link")); err != nil || l != "a.txt" {
		t.Errorf("restored symlink: %q, %v", l, err)
	}

	// Subpath with includes (case-insensitive) and --verify.
	target2 := filepath.Join(e.dir, "restore2")
	e.ok("restore", "latest:"+data, "--target", target2, "--iinclude", "*.jpg", "--verify")
	var files []string
	filepath.Walk(target2, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(target2, p)
			files = append(files, rel)
		}
		return nil
	})
	if !slices.Equal(files, []string{"B.JPG"}) {
		t.Errorf("restore --iinclude *.jpg of the subpath restored %v, want [B.JPG]", files)
	}

	// Filters.
	if n := len(e.snapshots("--tag", "one")); n != 1 {
		t.Errorf("snapshots --tag one: %d, want 1", n)
	}
	if n := len(e.snapshots("--host", "otherhost")); n != 0 {
		t.Errorf("snapshots --host otherhost: %d, want 0", n)
	}
	if n := len(e.snapshots("--latest", "1")); n != 1 {
		t.Errorf("snapshots --latest 1: %d, want 1", n)
	}
	table := e.ok("snapshots").stdout
	if !strings.Contains(table, "3 snapshots") || !strings.Contains(table, id[:8]) || !strings.Contains(table, "one,two") {
		t.Errorf("snapshots table:\n%s", table)
	}
}

func TestBackupExcludes(t *testing.T) {
	e := newInitEnv(t)
	data := e.makeData()
	exFile := e.writeFile("excludes", "# comment\n\n*.log\n")
	e.ok("backup", data, "--iexclude", "*.jpg", "--exclude-file", exFile, "--exclude", "link")
	target := filepath.Join(e.dir, "out")
	e.ok("restore", "latest", "--target", target)
	for rel, want := range map[string]bool{"a.txt": true, "sub/c.txt": true, "B.JPG": false, "sub/deep/d.log": false, "link": false} {
		_, err := os.Lstat(filepath.Join(target, data, rel))
		if (err == nil) != want {
			t.Errorf("%s restored: %v, want %v", rel, err == nil, want)
		}
	}
	if ex := e.snapshots()[0]["excludes"]; ex == nil || len(ex.([]any)) != 3 {
		t.Errorf("snapshot excludes %v, want the 3 patterns", ex)
	}
}

func TestBackupFilesFromAndPartial(t *testing.T) {
	e := newInitEnv(t)
	data := e.makeData()
	list := e.writeFile("list", filepath.Join(data, "sub")+"\n"+filepath.Join(data, "*.txt")+"\n")
	res := e.run("backup", "--files-from", list, filepath.Join(e.dir, "missing"))
	// The missing path is reported and makes the exit code 3.
	e.fails(exitPartial, res, "1 item could not be read")
	if !strings.Contains(res.stderr, "error: "+filepath.Join(e.dir, "missing")+": ") {
		t.Errorf("unreadable path not reported as \"error: PATH: ...\":\n%s", res.stderr)
	}
	paths := e.snapshots()[0]["paths"].([]any)
	// Like restic, a path that could not be read is reported, not recorded.
	if len(paths) != 2 || paths[0] != filepath.Join(data, "a.txt") || paths[1] != filepath.Join(data, "sub") {
		t.Errorf("paths %v: want a.txt (from the glob) and sub", paths)
	}
	// Nothing to back up at all is an error, not a snapshot.
	e.fails(exitFailure, e.run("backup"), "nothing to back up")
}

func TestCheck(t *testing.T) {
	e := newInitEnv(t)
	e.ok("backup", e.makeData())
	res := e.ok("check", "--read-data")
	if !strings.Contains(res.stdout, "no errors were found") {
		t.Errorf("check output:\n%s", res.stdout)
	}
	e.ok("check", "--read-data-subset", "1/2")
	e.fails(exitFailure, e.run("check", "--read-data-subset", "3/2"), "read-data subset")
	e.fails(exitFailure, e.run("check", "--read-data", "--read-data-subset", "10%"), "contradict")

	// Damage every data pack: check --read-data must report it and fail.
	packs := strings.Fields(e.ok("list", "packs").stdout)
	for _, p := range packs {
		f := filepath.Join(e.repo, "data", p[:2], p)
		os.Chmod(f, 0o600)
		buf := []byte(readFile(t, f))
		buf[40] ^= 0xff
		if err := os.WriteFile(f, buf, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	res = e.run("check", "--read-data")
	e.fails(exitFailure, res, "check found")
	if !strings.Contains(res.stderr, "error: ") {
		t.Errorf("no \"error:\" lines for the damaged packs:\n%s", res.stderr)
	}
	if strings.Contains(res.stdout, "no errors were found") {
		t.Error("check claims success on a damaged repository")
	}
}

func TestKeyCommands(t *testing.T) {
	e := newInitEnv(t)
	newPw := e.writeFile("newpw", "second password\n")
	res := e.ok("key", "add", "--new-password-file", newPw)
	added := regexp.MustCompile(`saved new key ([0-9a-f]{64})`).FindStringSubmatch(res.stdout)
	if added == nil {
		t.Fatalf("key add output:\n%s", res.stdout)
	}
	var keys []keyInfo
	if err := json.Unmarshal([]byte(e.ok("key", "list", "--json").stdout), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("%d keys, want 2", len(keys))
	}
	var current string
	for _, k := range keys {
		if k.Current {
			current = k.ID
		}
	}
	if current == "" || current == added[1] {
		t.Fatalf("current key %q; the added key %s must not be current", current, added[1])
	}
	if !strings.Contains(e.ok("key", "list").stdout, "*"+current[:8]) {
		t.Error("key list does not mark the current key with *")
	}
	// The new password opens the repository (trailing newline trimmed).
	withNew := map[string]string{"CAIRN_PASSWORD": "second password"}
	if r := e.runEnv(withNew, "list", "keys"); r.code != 0 || len(strings.Fields(r.stdout)) != 2 {
		t.Fatalf("new password: exit %d, %q", r.code, r.stdout)
	}
	e.fails(exitFailure, e.run("key", "remove", current[:8]), "refusing to remove")
	// With the new password, the old key can go.
	if r := e.runEnv(withNew, "key", "remove", current[:10]); r.code != 0 {
		t.Fatalf("key remove: %s", r.stderr)
	}
	e.fails(exitFailure, e.run("list", "keys"), "wrong password")

	// key passwd swaps the current key for a new one.
	third := e.writeFile("thirdpw", "third")
	if r := e.runEnv(withNew, "key", "passwd", "--new-password-file", third); r.code != 0 {
		t.Fatalf("key passwd: %s", r.stderr)
	}
	e.fails(exitFailure, e.runEnv(withNew, "list", "keys"), "wrong password")
	if r := e.runEnv(map[string]string{"CAIRN_PASSWORD": "third"}, "list", "keys"); len(strings.Fields(r.stdout)) != 1 {
		t.Errorf("after passwd: keys %q, want exactly one", r.stdout)
	}
}

func TestCatListStats(t *testing.T) {
	e := newInitEnv(t)
	data := e.makeData()
	e.ok("backup", data)

	var cfg map[string]any
	if err := json.Unmarshal([]byte(e.ok("cat", "config").stdout), &cfg); err != nil || cfg["version"] != 2.0 || len(cfg["id"].(string)) != 64 {
		t.Errorf("cat config: %v %v", cfg, err)
	}
	snaps := strings.Fields(e.ok("list", "snapshots").stdout)
	if len(snaps) != 1 || len(snaps[0]) != 64 {
		t.Fatalf("list snapshots: %v", snaps)
	}
	var sn map[string]any
	if err := json.Unmarshal([]byte(e.ok("cat", "snapshot", snaps[0][:6]).stdout), &sn); err != nil || sn["hostname"] != "testhost" {
		t.Errorf("cat snapshot: %v %v", sn, err)
	}
	var tree struct{ Nodes []struct{ Name string } }
	if err := json.Unmarshal([]byte(e.ok("cat", "tree", "latest:"+data+"/sub").stdout), &tree); err != nil {
		t.Fatal(err)
	}
	if len(tree.Nodes) != 2 || tree.Nodes[0].Name != "c.txt" || tree.Nodes[1].Name != "deep" {
		t.Errorf("cat tree of sub: %+v", tree.Nodes)
	}
	e.fails(exitFailure, e.run("cat", "tree", "latest:"+data+"/a.txt"), "not a directory")

	// Every data blob is listed; the one of a.txt prints its content.
	blobs := e.ok("list", "blobs").stdout
	var dataBlobs []string
	for _, line := range strings.Split(strings.TrimSpace(blobs), "\n") {
		typ, id, _ := strings.Cut(line, " ")
		if typ != "data" && typ != "tree" || len(id) != 64 {
			t.Fatalf("list blobs line %q", line)
		}
		if typ == "data" {
			dataBlobs = append(dataBlobs, id)
		}
	}
	found := false
	for _, id := range dataBlobs {
		if e.ok("cat", "blob", id).stdout == "alpha\n" {
			found = true
		}
	}
	if !found {
		t.Error("no data blob holds the content of a.txt")
	}
	if keys := strings.Fields(e.ok("list", "keys").stdout); len(keys) != 1 {
		t.Errorf("list keys: %v", keys)
	}
	e.fails(exitFailure, e.run("list", "trees"), "cannot list")

	var st statsJSON
	if err := json.Unmarshal([]byte(e.ok("stats", "--json", "latest").stdout), &st); err != nil {
		t.Fatal(err)
	}
	// 5 entries in data + the directories above it; 4 files' bytes.
	wantBytes := uint64(len("alpha\n") + len("picture") + 6*50000 + len("log line\n"))
	if st.TotalSize != wantBytes || st.SnapshotsCount != 1 || st.TotalFileCount < 8 {
		t.Errorf("stats restore-size: %+v, want total_size %d", st, wantBytes)
	}
	if err := json.Unmarshal([]byte(e.ok("stats", "--json", "--mode", "raw-data").stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.TotalBlobCount != uint64(len(strings.Split(strings.TrimSpace(blobs), "\n"))) || st.CompressionRatio <= 1 {
		t.Errorf("stats raw-data: %+v (repetitive data must compress)", st)
	}
}

func TestVersionAndCompletion(t *testing.T) {
	e := newTestEnv(t)
	res := e.ok("version")
	want := "cairn " + version + " compiled with " + runtime.Version() + " on " + runtime.GOOS + "/" + runtime.GOARCH
	if strings.TrimSpace(res.stdout) != want {
		t.Errorf("version: %q, want %q", res.stdout, want)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(e.ok("version", "--json").stdout), &v); err != nil || v["version"] != version || v["go_version"] != runtime.Version() {
		t.Errorf("version --json: %v %v", v, err)
	}
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		if out := e.ok("completion", sh).stdout; !strings.Contains(out, "cairn") {
			t.Errorf("completion %s: no script", sh)
		}
	}
	e.fails(exitFailure, e.run("completion", "tcsh"), "no completion")
}
