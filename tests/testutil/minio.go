package testutil

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// MinIO is a real MinIO server on 127.0.0.1 with its own data directory.
type MinIO struct {
	Endpoint  string // 127.0.0.1:PORT clients use (a latency proxy's, see StartMinIOWithLatency)
	Direct    string // 127.0.0.1:PORT the server itself listens on
	AccessKey string
	SecretKey string
	cmd       *exec.Cmd
	dataDir   string
	port      int
	bin       string
	t         testing.TB
}

// MinIOBin finds the minio server: $CAIRN_MINIO, then PATH, then the cache
// that .ci/run fills. Missing: fatal in CI, skip elsewhere.
func MinIOBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CAIRN_MINIO"); p != "" {
		return p
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	p := filepath.Join(cache, "cairn", "bin", "minio")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := "minio server not found: run .ci/run or `GOBIN=~/.cache/cairn/bin go install github.com/minio/minio@latest`"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartMinIO starts a server that is stopped when the test ends.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	m := &MinIO{AccessKey: "cairnadmin", SecretKey: "cairn-secret-key", dataDir: t.TempDir(), bin: MinIOBin(t), t: t}
	m.port = FreePort(t)
	m.Endpoint = "127.0.0.1:" + strconv.Itoa(m.port)
	m.Direct = m.Endpoint
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Start (re)starts the server on the same port and data directory.
func (m *MinIO) Start() {
	m.t.Helper()
	console := FreePort(m.t)
	cmd := exec.Command(m.bin, "server", m.dataDir, "--address", m.Direct,
		"--console-address", "127.0.0.1:"+strconv.Itoa(console), "--quiet")
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CALLHOME_ENABLE=off")
	logf, _ := os.Create(filepath.Join(m.t.TempDir(), "minio.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start minio: %v", err)
	}
	m.cmd = cmd
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		// Ready answers before IAM is up; an anonymous bucket probe gets
		// 503 until then, 403/404 after.
		resp, err := http.Head("http://" + m.Direct + "/cairn-readiness-probe")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.Stop()
	log, _ := os.ReadFile(logf.Name())
	m.t.Fatalf("minio did not become ready on %s: %s", m.Direct, log)
}

// Stop kills the server (like a crash: no graceful shutdown).
func (m *MinIO) Stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
		m.cmd = nil
	}
}

// Env returns the AWS variables that point a client at this server.
func (m *MinIO) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + m.AccessKey, "AWS_SECRET_ACCESS_KEY=" + m.SecretKey, "AWS_DEFAULT_REGION=us-east-1"}
}

// URL is the restic/cairn repository location for bucket/prefix.
func (m *MinIO) URL(bucketAndPrefix string) string {
	return fmt.Sprintf("s3:http://%s/%s", m.Endpoint, bucketAndPrefix)
}
