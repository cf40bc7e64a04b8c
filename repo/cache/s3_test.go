package cache

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backendtest"
	"github.com/cairn-backup/cairn/repo/s3"
	"github.com/cairn-backup/cairn/tests/testutil"
)

// TestConformanceS3: the cache over a real MinIO, every pack taken as a
// tree pack so that packs go through the cache too.
func TestConformanceS3(t *testing.T) {
	m := testutil.StartMinIO(t)
	var seq atomic.Int64
	backendtest.Run(t, func(t *testing.T) repo.Backend {
		cfg, err := s3.ParseLocation(m.URL(fmt.Sprintf("cache-conf-%d/repo", seq.Add(1))))
		if err != nil {
			t.Fatal(err)
		}
		cfg.KeyID, cfg.Secret, cfg.Region = m.AccessKey, m.SecretKey, "us-east-1"
		be, err := s3.Create(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return allTrees{open(t, repo.RetryBackend{Backend: be, Attempts: 2}, t.TempDir(), nil)}
	})
}
