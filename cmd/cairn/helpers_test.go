package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/cairn-backup/cairn/repo"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestMain lets tests run the real main() in a child process (for signal
// handling): with CAIRN_TEST_MAIN=1 the test binary acts as cairn.
func TestMain(m *testing.M) {
	if os.Getenv("CAIRN_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type result struct {
	code           int
	stdout, stderr string
}

// testEnv is a temporary directory with a repository location and the
// environment commands see (nothing leaks in from the real environment).
type testEnv struct {
	t    *testing.T
	dir  string
	repo string
	env  map[string]string
	// passwords, when set, are what a fake terminal types at prompts.
	passwords []string
	// stdin, when set, is the commands' standard input (else empty).
	stdin io.Reader
}

const testPassword = "geheim"

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{t: t, dir: dir, repo: filepath.Join(dir, "repo")}
	e.env = map[string]string{
		"CAIRN_KDF_N":      "1024",
		"CAIRN_PASSWORD":   testPassword,
		"CAIRN_REPOSITORY": e.repo,
		"CAIRN_HOST":       "testhost",
		// Never the user's ~/.cache (it also holds the test tools).
		"XDG_CACHE_HOME": filepath.Join(dir, "xdg-cache"),
	}
	return e
}

// newInitEnv returns a testEnv with an initialized repository.
func newInitEnv(t *testing.T) *testEnv {
	e := newTestEnv(t)
	e.ok("init")
	return e
}

func (e *testEnv) cliEnv(stdout, stderr *syncBuffer, extra map[string]string) *cliEnv {
	var stdin io.Reader = strings.NewReader("")
	if e.stdin != nil {
		stdin = e.stdin
	}
	env := &cliEnv{
		stdin:  stdin,
		stdout: stdout,
		stderr: stderr,
		getenv: func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return e.env[k]
		},
	}
	if e.passwords != nil {
		env.readPassword = func(context.Context) (string, error) {
			if len(e.passwords) == 0 {
				return "", errors.New("no more input")
			}
			pw := e.passwords[0]
			e.passwords = e.passwords[1:]
			return pw, nil
		}
	}
	return env
}

// runCtx runs cairn in-process with extra environment variables.
func (e *testEnv) runCtx(ctx context.Context, extra map[string]string, args ...string) result {
	var stdout, stderr syncBuffer
	code := run(ctx, args, e.cliEnv(&stdout, &stderr, extra))
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (e *testEnv) run(args ...string) result {
	return e.runCtx(context.Background(), nil, args...)
}

func (e *testEnv) runEnv(extra map[string]string, args ...string) result {
	return e.runCtx(context.Background(), extra, args...)
}

// ok runs a command that must succeed.
func (e *testEnv) ok(args ...string) result {
	e.t.Helper()
	res := e.run(args...)
	if res.code != 0 {
		e.t.Fatalf("cairn %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	}
	return res
}

// fails runs a command that must exit with code and print exactly one
// line "cairn: ..." containing all of wants.
func (e *testEnv) fails(code int, res result, wants ...string) {
	e.t.Helper()
	if res.code != code {
		e.t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", res.code, code, res.stdout, res.stderr)
	}
	lines := strings.Split(strings.TrimRight(res.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "cairn: ") {
		e.t.Fatalf("last stderr line %q does not start with \"cairn: \"", last)
	}
	for _, w := range wants {
		if !strings.Contains(last, w) {
			e.t.Errorf("error %q does not contain %q", last, w)
		}
	}
}

// writeFile creates a file (and its directories) below the test directory.
func (e *testEnv) writeFile(rel, content string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// makeData writes a small tree and returns its root.
func (e *testEnv) makeData() string {
	e.writeFile("data/a.txt", "alpha\n")
	e.writeFile("data/B.JPG", "picture")
	e.writeFile("data/sub/c.txt", strings.Repeat("cairn ", 50000))
	e.writeFile("data/sub/deep/d.log", "log line\n")
	if err := os.Symlink("a.txt", filepath.Join(e.dir, "data/link")); err != nil {
		e.t.Fatal(err)
	}
	return filepath.Join(e.dir, "data")
}

// snapshots returns the parsed output of `snapshots --json`.
func (e *testEnv) snapshots(args ...string) []map[string]any {
	e.t.Helper()
	res := e.ok(append([]string{"snapshots", "--json"}, args...)...)
	var sns []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &sns); err != nil {
		e.t.Fatalf("snapshots --json: %v\n%s", err, res.stdout)
	}
	return sns
}

// repoFiles lists the file names in a repository directory ("locks", ...).
func (e *testEnv) repoFiles(sub string) []string {
	e.t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.repo, sub))
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return names
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// openRepo opens the test repository with the package's own API (closed
// when the test ends), for tests that prepare or damage it directly.
func (e *testEnv) openRepo() *repo.Repository {
	e.t.Helper()
	be, err := repo.OpenLocal(e.repo)
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), be, testPassword, repo.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { r.Close() })
	return r
}

// holdLock takes a lock on the test repository, as another process would;
// the caller releases it (or the test's end does).
func (e *testEnv) holdLock(exclusive bool) *repo.Lock {
	e.t.Helper()
	l, err := e.openRepo().Lock(context.Background(), exclusive)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { l.Unlock(context.Background()) })
	return l
}
