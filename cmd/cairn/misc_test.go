package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/snapshot"
)

// sparseData makes a directory with a large sparse file: backing it up
// takes seconds but costs no disk space.
func sparseData(t *testing.T, e *testEnv) string {
	t.Helper()
	dir := filepath.Join(e.dir, "big")
	os.MkdirAll(dir, 0o755)
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return dir
}

// waitForLock polls until the repository holds a lock.
func waitForLock(t *testing.T, e *testEnv, done <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(e.repoFiles("locks")) == 0 {
		select {
		case <-done:
			t.Fatal("command ended before it took a lock")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no lock appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the backup get going
}

func TestInterruptRemovesLock(t *testing.T) {
	e := newInitEnv(t)
	data := sparseData(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resc := make(chan result, 1)
	done := make(chan struct{})
	go func() {
		resc <- e.runCtx(ctx, map[string]string{"CAIRN_PROGRESS_FPS": "20"}, "backup", data)
		close(done)
	}()
	waitForLock(t, e, done)
	cancel()
	var res result
	select {
	case res = <-resc:
	case <-time.After(30 * time.Second):
		t.Fatal("backup did not stop after cancellation")
	}
	e.fails(exitInterrupted, res, "interrupted")
	if locks := e.repoFiles("locks"); len(locks) != 0 {
		t.Errorf("lock left behind after interruption: %v", locks)
	}
	if sns := e.repoFiles("snapshots"); len(sns) != 0 {
		t.Errorf("an interrupted backup saved a snapshot")
	}
	// Forced progress on a non-terminal: plain status lines on stderr.
	if !strings.Contains(res.stderr, " files") || !strings.Contains(res.stderr, "/s") || strings.Contains(res.stderr, "\r") {
		t.Errorf("no plain progress lines on stderr:\n%.500s", res.stderr)
	}
}

func TestSignalInChildProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	e := newInitEnv(t)
	data := sparseData(t, e)
	cmd := exec.Command(os.Args[0], "backup", data)
	cmd.Env = []string{"CAIRN_TEST_MAIN=1", "CAIRN_PASSWORD=" + testPassword, "CAIRN_REPOSITORY=" + e.repo, "HOME=" + e.dir}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait(); close(done) }()
	waitForLock(t, e, done)
	cmd.Process.Signal(syscall.SIGINT)
	var err error
	select {
	case err = <-waitErr:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("cairn did not stop after SIGINT")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit: %v, want code %d; stderr:\n%s", err, exitInterrupted, stderr.String())
	}
	if !strings.HasPrefix(stderr.String(), "cairn: interrupted") {
		t.Errorf("stderr: %q", stderr.String())
	}
	if locks := e.repoFiles("locks"); len(locks) != 0 {
		t.Errorf("lock left behind after SIGINT: %v", locks)
	}
}

func TestFoldPattern(t *testing.T) {
	tests := []struct {
		pat   string
		path  string
		match bool
	}{
		{"*.jpg", "/a/B.JPG", true},
		{"*.jpg", "/a/b.jpeg", false},
		{"/Home/**/Cache", "/home/u/x/cache/f", true},
		{"[a-c]*.TXT", "/B1.txt", true},
		{"[a-c]*.TXT", "/d1.txt", false},
		{"[^a]x", "/Ax", false},
		{"[^a]x", "/bX", true},
		{"f?o", "/FxO", true},
		{`\*lit`, "/*LIT", true},
		{`\*lit`, "/xlit", false},
		{"ünï", "/ÜNÏ", true},
	}
	for _, tt := range tests {
		m, err := buildMatcher("test", nil, []string{tt.pat})
		if err != nil {
			t.Fatalf("%q: %v", tt.pat, err)
		}
		if got := m.Match(tt.path); got != tt.match {
			t.Errorf("fold %q (%q) Match(%q) = %v, want %v", tt.pat, foldPattern(tt.pat), tt.path, got, tt.match)
		}
	}
	// Exact and folded patterns mix; order is kept for negation.
	m, err := buildMatcher("test", []string{"*.log"}, []string{"!KEEP.log"})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Match("/x/drop.log") || m.Match("/x/keep.log") || m.Match("/x/DROP.LOG") {
		t.Error("mixed exact/folded patterns")
	}
	if m, _ := buildMatcher("test", nil, nil); m != nil {
		t.Error("no patterns must give a nil matcher")
	}
	if _, err := buildMatcher("exclude", []string{"[a"}, nil); err == nil || !strings.Contains(err.Error(), "exclude") {
		t.Errorf("invalid pattern: %v", err)
	}
}

func TestProgressStatus(t *testing.T) {
	p := &snapshot.Progress{}
	p.Files.Store(5)
	p.TotalFiles.Store(10)
	p.Bytes.Store(50 << 20)
	p.TotalBytes.Store(100 << 20)
	p.ScanDone.Store(true)
	p.SetCurrent("/data/file")
	d := &progressDisplay{p: p, unit: "files"}
	got := d.status(10 * time.Second)
	want := "[0:10] 50.00%  5 / 10 files  50.000 MiB / 100.000 MiB  5.000 MiB/s  ETA 0:10  /data/file"
	if got != want {
		t.Errorf("status\n got %q\nwant %q", got, want)
	}
	p.ScanDone.Store(false)
	if got := d.status(10 * time.Second); !strings.Contains(got, "10+ files") || strings.Contains(got, "ETA") {
		t.Errorf("while scanning: %q", got)
	}
	if got := truncate("abcdef", 4); got != "abcd" {
		t.Errorf("truncate: %q", got)
	}
	if got := fitLine("[0:01]  /aaaa/bbbb/cccc/file", "/aaaa/bbbb/cccc/file", 22); got != "[0:01]  …bbb/cccc/file" || utf8.RuneCountInString(got) != 22 {
		t.Errorf("fitLine kept %q", got)
	}
	if got := fitLine("[0:01] 5 files  /aaaa/bbbb", "/aaaa/bbbb", 12); got != "[0:01] 5 fil" {
		t.Errorf("fitLine with no room for the item: %q", got)
	}
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1536: "1.500 KiB", 3 << 30: "3.000 GiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := formatDuration(3723 * time.Second); got != "1:02:03" {
		t.Errorf("formatDuration: %q", got)
	}
}

func TestProgressTerminal(t *testing.T) {
	var buf syncBuffer
	g := &globalOptions{env: &cliEnv{stderr: &buf, stdout: &buf, getenv: func(string) string { return "" }, stderrTerminal: true, termWidth: func() int { return 30 }}}
	p := &snapshot.Progress{}
	p.SetCurrent("/a/very/long/path/name/that/is/cut")
	stop := g.startProgress(p, "files")
	time.Sleep(600 * time.Millisecond)
	g.warnf("error: x\n")
	time.Sleep(400 * time.Millisecond)
	stop()
	out := buf.String()
	if !strings.Contains(out, "\r\x1b[2K[0:0") {
		t.Errorf("no status line drawn in place: %q", out)
	}
	if !strings.Contains(out, "\r\x1b[2Kerror: x\n") {
		t.Errorf("status line not cleared before a message: %q", out)
	}
	if !strings.HasSuffix(out, "\r\x1b[2K") {
		t.Errorf("status line not cleared at the end: %q", out)
	}
	for _, line := range strings.Split(out, "\r\x1b[2K") {
		if len([]rune(strings.TrimSuffix(line, "\n"))) > 29 {
			t.Errorf("line longer than the terminal: %q", line)
		}
	}
	// -q and --json draw nothing.
	var quiet syncBuffer
	g.env.stderr = &quiet
	g.quiet = true
	g.startProgress(p, "files")()
	if quiet.String() != "" {
		t.Errorf("progress with -q: %q", quiet.String())
	}
}

func TestUploadersPerBackend(t *testing.T) {
	for loc, want := range map[string]int{
		"/srv/repo": 2, "repo": 2, "s3:https://s3.example.com/bucket": 4, "s3:http://127.0.0.1:9000/bkt/prefix": 4,
	} {
		if got := uploaders(loc); got != want {
			t.Errorf("uploaders(%q) = %d, want %d", loc, got, want)
		}
	}
}
