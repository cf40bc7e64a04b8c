package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backendtest"
	"github.com/cairn-backup/cairn/tests/testutil"
	"github.com/minio/minio-go/v7"
)

func TestParseLocation(t *testing.T) {
	tests := []struct {
		loc                      string
		endpoint, bucket, prefix string
		http                     bool
		bad                      bool
	}{
		{loc: "s3:https://s3.example.com/bucket", endpoint: "s3.example.com", bucket: "bucket"},
		{loc: "s3:https://s3.example.com:9000/bucket/a/b/", endpoint: "s3.example.com:9000", bucket: "bucket", prefix: "a/b"},
		{loc: "s3:http://127.0.0.1:9000/bkt/p", endpoint: "127.0.0.1:9000", bucket: "bkt", prefix: "p", http: true},
		{loc: "s3:http://127.0.0.1:9000/b/p", bad: true}, // S3 bucket names have 3 characters at least
		{loc: "s3:http://127.0.0.1:9000/-bucket", bad: true},
		{loc: "s3:s3.amazonaws.com/bucket/prefix", endpoint: "s3.amazonaws.com", bucket: "bucket", prefix: "prefix"},
		{loc: "s3://host/bucket", endpoint: "host", bucket: "bucket"},
		{loc: "s3:host", bad: true},
		{loc: "s3:https://host/", bad: true},
		{loc: "/local/path", bad: true},
	}
	for _, tt := range tests {
		cfg, err := ParseLocation(tt.loc)
		if tt.bad {
			if err == nil {
				t.Errorf("%s: accepted", tt.loc)
			}
			continue
		}
		if err != nil || cfg.Endpoint != tt.endpoint || cfg.Bucket != tt.bucket || cfg.Prefix != tt.prefix || cfg.UseHTTP != tt.http {
			t.Errorf("%s: got %+v, %v", tt.loc, cfg, err)
		}
	}
	var cfg Config
	if err := cfg.ApplyOption("s3.bucket-lookup", "sideways"); err == nil {
		t.Error("bad bucket-lookup accepted")
	}
	if err := cfg.ApplyOption("s3.connections", "0"); err == nil {
		t.Error("0 connections accepted")
	}
}

var bucketSeq atomic.Int64

func minioConfig(t *testing.T, m *testutil.MinIO, bucket, prefix string) Config {
	cfg, err := ParseLocation(m.URL(bucket + "/" + prefix))
	if err != nil {
		t.Fatal(err)
	}
	cfg.KeyID, cfg.Secret = m.AccessKey, m.SecretKey
	cfg.Region = "us-east-1"
	return cfg
}

func TestConformance(t *testing.T) {
	m := testutil.StartMinIO(t)
	backendtest.Run(t, func(t *testing.T) repo.Backend {
		cfg := minioConfig(t, m, fmt.Sprintf("conf-%d", bucketSeq.Add(1)), "repo/sub")
		be, err := Create(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return repo.RetryBackend{Backend: be, Attempts: 2}
	})
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	m := testutil.StartMinIO(t)

	missing := minioConfig(t, m, "no-such-bucket", "")
	be, err := Open(missing)
	if err != nil {
		t.Fatal(err)
	}
	err = be.CheckBucket(ctx)
	if !repo.IsNotExist(err) || !strings.Contains(err.Error(), "cairn init") {
		t.Fatalf("missing bucket: %v", err)
	}

	bad := minioConfig(t, m, "bucket-one", "")
	bad.Secret = "wrong-secret"
	be, _ = Open(bad)
	err = be.CheckBucket(ctx)
	if !errors.Is(err, ErrCredentials) || !errors.Is(err, repo.ErrPermanent) {
		t.Fatalf("wrong credentials: %v", err)
	}
	// Permanent errors are not retried: this returns at once.
	rb := repo.RetryBackend{Backend: be, Attempts: 5}
	rb.OnRetry = func(string, error, time.Duration) { t.Error("permanent error retried") }
	if _, err := rb.Stat(ctx, repo.Handle{Type: repo.ConfigFile}); !errors.Is(err, ErrCredentials) {
		t.Fatalf("stat with wrong credentials: %v", err)
	}

	// A stopped server is transient: retried, then reported.
	good := minioConfig(t, m, "bucket-two", "")
	gbe, err := Create(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	m.Stop()
	var tries atomic.Int64
	rb = repo.RetryBackend{Backend: gbe, Attempts: 3, Delay: 10 * time.Millisecond}
	rb.OnRetry = func(string, error, time.Duration) { tries.Add(1) }
	if _, err := rb.Stat(ctx, repo.Handle{Type: repo.ConfigFile}); err == nil || tries.Load() != 2 {
		t.Fatalf("stopped server: err %v after %d retries", err, tries.Load())
	}
	m.Start()
	if _, err := rb.Stat(ctx, repo.Handle{Type: repo.ConfigFile}); !repo.IsNotExist(err) {
		t.Fatalf("after restart: %v", err)
	}
}

// Credentials in the URL are refused, and no error repeats them.
func TestCredentialsInLocation(t *testing.T) {
	for _, loc := range []string{
		"s3:http://AKIDEXAMPLE:wJalrSECRETKEY@127.0.0.1:9000/bucket/prefix",
		"s3:https://AKIDEXAMPLE:wJalrSECRETKEY@s3.example.com/bucket",
		"s3:AKIDEXAMPLE:wJalrSECRETKEY@s3.example.com/bucket",
		"s3://AKIDEXAMPLE:wJalrSECRETKEY@s3.example.com/bucket",
		"s3:http://AKIDEXAMPLE:wJalrSECRETKEY@host:port:bad/bucket", // unparsable too
		"s3:http://AKIDEXAMPLE:wJalr%zzSECRETKEY@host/bucket",       // bad escape
		"s3:https://AKIDEXAMPLE@s3.example.com/bucket",
	} {
		_, err := ParseLocation(loc)
		if err == nil {
			t.Errorf("%s: accepted", loc)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "wJalr") || strings.Contains(msg, "AKIDEXAMPLE") {
			t.Errorf("error repeats the credentials: %v", err)
		}
		if !errors.Is(err, ErrCredentialsInURL) {
			t.Errorf("%s: %v, want ErrCredentialsInURL", loc, err)
		}
	}
	if got, want := Redact("s3:http://ID:SECRET@host:9000/b/p"), "s3:http://***@host:9000/b/p"; got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
	for _, loc := range []string{"s3:https://host/b@x", "/srv/repo@1", "s3:host/bucket"} {
		if got := Redact(loc); got != loc {
			t.Errorf("Redact(%q) = %q: nothing to redact", loc, got)
		}
	}
}

// A pack is uploaded signed with its name as the SHA-256 of its bytes: the
// server stores one whose name is its hash and refuses one whose is not
// (no second hashing pass on the client, and the bytes are checked).
func TestPackSignedWithItsName(t *testing.T) {
	ctx := context.Background()
	m := testutil.StartMinIO(t)
	be, err := Create(ctx, minioConfig(t, m, fmt.Sprintf("sha-%d", bucketSeq.Add(1)), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(strings.Repeat("pack bytes ", 1000))
	good := repo.Handle{Type: repo.PackFile, Name: repo.Hash(data).String()}
	if err := be.Save(ctx, good, strings.NewReader(string(data)), int64(len(data))); err != nil {
		t.Fatalf("pack named by its hash: %v", err)
	}
	bad := repo.Handle{Type: repo.PackFile, Name: repo.Hash([]byte("other")).String()}
	if err := be.Save(ctx, bad, strings.NewReader(string(data)), int64(len(data))); err == nil {
		t.Fatal("pack whose name is not its hash was stored")
	}
	if _, err := be.Stat(ctx, bad); err == nil {
		t.Fatal("the refused pack exists")
	}
}

// Without keys in the environment and without a credentials file, Open
// fails at once with a permanent error that says what to set, instead of
// every request failing and being retried; a credentials file is read.
func TestOpenWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "missing"))
	t.Setenv("AWS_PROFILE", "")
	cfg, err := ParseLocation("s3:http://127.0.0.1:9/bucket")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(cfg)
	if err == nil || !errors.Is(err, repo.ErrPermanent) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("Open without credentials: %v", err)
	}
	file := filepath.Join(dir, "credentials")
	if err := os.WriteFile(file, []byte("[default]\naws_access_key_id = id\naws_secret_access_key = secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
	if _, err := Open(cfg); err != nil {
		t.Fatalf("Open with a credentials file: %v", err)
	}
}

// A full object store is not a transient failure: the error says what to
// do and is not retried (MinIO answered a full drive with 507 and
// XMinioStorageFull, which six retries spent 16 s on).
func TestWrapStorageFull(t *testing.T) {
	b := &Backend{cfg: Config{Endpoint: "127.0.0.1:9000", Bucket: "bk"}}
	for _, resp := range []minio.ErrorResponse{
		{Code: "XMinioStorageFull", StatusCode: http.StatusInsufficientStorage},
		{Code: "QuotaExceeded", StatusCode: http.StatusForbidden},
		{Code: "SomethingNew", StatusCode: http.StatusInsufficientStorage},
	} {
		err := b.wrap("save lock/x", resp)
		if !errors.Is(err, repo.ErrPermanent) || !strings.Contains(err.Error(), "free space") {
			t.Errorf("%s: %v", resp.Code, err)
		}
	}
	if err := b.wrap("save data/x", minio.ErrorResponse{Code: "SlowDown", StatusCode: http.StatusServiceUnavailable}); errors.Is(err, repo.ErrPermanent) {
		t.Errorf("SlowDown taken for permanent: %v", err)
	}
}
