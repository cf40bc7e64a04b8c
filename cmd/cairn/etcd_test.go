package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/cluster"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// startEtcd runs an etcd member on loopback with dataDir and returns its
// client URL; it stops with the test.
func startEtcd(t *testing.T, bin, dataDir string) string {
	t.Helper()
	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", port()), fmt.Sprintf("http://127.0.0.1:%d", port())
	cmd := exec.Command(filepath.Join(bin, "etcd"), "--name=test", "--data-dir="+dataDir,
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=test="+peer, "--unsafe-no-fsync", "--log-level=error")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return client
}

func etcdClient(t *testing.T, url string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 20 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestEtcdSnapshot streams a snapshot of a real etcd into the repository,
// dumps it back, has etcdutl check and restore it, and starts an etcd on
// the restored data that holds the keys.
func TestEtcdSnapshot(t *testing.T) {
	bin, err := cluster.FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bin, "etcdutl")); err != nil {
		t.Fatalf("etcdutl not in %s: run tests/cluster/build-binaries.sh", bin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := startEtcd(t, bin, t.TempDir())
	cli := etcdClient(t, url)
	want := map[string]string{}
	for i := range 200 {
		k, v := fmt.Sprintf("/registry/things/t%03d", i), strings.Repeat(fmt.Sprint(i), 100)
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatalf("put: %v", err)
		}
		want[k] = v
	}

	e := newInitEnv(t)
	e.ok("etcd", "snapshot", "--endpoints", url, "--tag", "etcd")
	dumped := e.ok("dump", "latest", "/etcd-snapshot.db").stdout
	if len(dumped)%512 != sha256.Size {
		t.Fatalf("dumped snapshot of %d bytes has no checksum trailer", len(dumped))
	}
	file := filepath.Join(t.TempDir(), "snap.db")
	if err := os.WriteFile(file, []byte(dumped), 0o600); err != nil {
		t.Fatal(err)
	}
	etcdutl := filepath.Join(bin, "etcdutl")
	if out, err := exec.Command(etcdutl, "snapshot", "status", file, "-w", "json").CombinedOutput(); err != nil {
		t.Fatalf("etcdutl snapshot status: %v: %s", err, out)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if out, err := exec.Command(etcdutl, "snapshot", "restore", file, "--data-dir", restored).CombinedOutput(); err != nil {
		t.Fatalf("etcdutl snapshot restore: %v: %s", err, out)
	}
	cli2 := etcdClient(t, startEtcd(t, bin, restored))
	resp, err := cli2.Get(ctx, "/registry/things/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("get from the restored etcd: %v", err)
	}
	if len(resp.Kvs) != len(want) {
		t.Fatalf("restored etcd holds %d keys, want %d", len(resp.Kvs), len(want))
	}
	for _, kv := range resp.Kvs {
		if want[string(kv.Key)] != string(kv.Value) {
			t.Errorf("key %s: %q", kv.Key, kv.Value)
		}
	}

	// No etcd there: a clear error, no snapshot.
	res := e.run("etcd", "snapshot", "--endpoints", "http://127.0.0.1:1", "--dial-timeout", "1s")
	e.fails(exitFailure, res, "etcd")
	if n := strings.Count(e.ok("snapshots").stdout, "etcd-snapshot.db"); n != 1 {
		t.Errorf("%d etcd snapshots after a failed one, want 1", n)
	}
	e.fails(exitFailure, e.run("etcd", "snapshot", "--cert", "x.crt"), "--cert and --key go together")
}

func TestTrailerCheck(t *testing.T) {
	db := bytes.Repeat([]byte("page"), 512) // 2048 bytes: whole pages
	sum := sha256.Sum256(db)
	good := append(append([]byte(nil), db...), sum[:]...)
	for _, c := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"whole", good, true},
		{"flipped bit", append(append([]byte(nil), good[:100]...), append([]byte{good[100] ^ 1}, good[101:]...)...), false},
		{"cut short", good[:len(good)-1], false},
		{"no checksum", db, false},
		{"empty", nil, false},
	} {
		check := newTrailerCheck()
		// Written in odd pieces, as a stream arrives.
		for rest := c.data; len(rest) > 0; {
			n := min(len(rest), 7+len(rest)%13)
			check.Write(rest[:n])
			rest = rest[n:]
		}
		if err := check.verify(); (err == nil) != c.ok {
			t.Errorf("%s: verify = %v", c.name, err)
		}
	}
}
