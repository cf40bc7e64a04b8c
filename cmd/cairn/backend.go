package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/s3"
)

func init() {
	for _, key := range s3.OptionKeys {
		extOptions = append(extOptions, extOption{key: key, help: "S3 backend option", apply: func(g *globalOptions, v string) error {
			var probe s3.Config
			return probe.ApplyOption(key, v) // validated now, used by openBackend
		}})
	}
}

// openBackend picks the storage backend for a repository location: a plain
// path (or "local:PATH") is a local directory, "s3:…" an S3 bucket. Remote
// backends retry transient errors; rate limits and read-only mode wrap any
// backend.
func (g *globalOptions) openBackend(ctx context.Context, loc string, create bool) (repo.Backend, error) {
	if loc == "" {
		return nil, errors.New("no repository given: use -r/--repo or set CAIRN_REPOSITORY")
	}
	var be repo.Backend
	var err error
	scheme, _, hasScheme := strings.Cut(loc, ":")
	switch {
	case s3.IsLocation(loc):
		be, err = g.openS3(ctx, loc, create)
	case hasScheme && scheme == "local":
		be, err = openLocal(strings.TrimPrefix(loc, "local:"), create)
	case hasScheme && isKnownRemote(scheme):
		return nil, fmt.Errorf("repository %s: the %s backend is not supported; use a local path or an s3: URL", s3.Redact(loc), scheme)
	default:
		be, err = openLocal(loc, create)
	}
	if err != nil {
		return nil, err
	}
	be = repo.NewLimitBackend(be, g.limitUp, g.limitDown)
	if g.readOnly {
		be = repo.ReadOnlyBackend{Backend: be}
	}
	return be, nil
}

func isKnownRemote(scheme string) bool {
	switch scheme {
	case "sftp", "rest", "b2", "azure", "gs", "swift", "rclone":
		return true
	}
	return false
}

func openLocal(dir string, create bool) (repo.Backend, error) {
	if create {
		return repo.CreateLocal(dir)
	}
	return repo.OpenLocal(dir)
}

func (g *globalOptions) openS3(ctx context.Context, loc string, create bool) (repo.Backend, error) {
	cfg, err := s3.ParseLocation(loc)
	if err != nil {
		return nil, err
	}
	cfg.ApplyEnv(g.env.getenv)
	for key, value := range g.extended {
		if strings.HasPrefix(key, "s3.") {
			if err := cfg.ApplyOption(key, value); err != nil {
				return nil, err
			}
		}
	}
	cfg.CACert, cfg.InsecureTLS = g.cacert, g.insecureTLS
	var be *s3.Backend
	if create {
		be, err = s3.Create(ctx, cfg)
	} else {
		// No bucket check first: it would cost a round trip on every run,
		// and reading the config of a missing bucket says as much
		// (NoSuchBucket: "bucket … does not exist").
		be, err = s3.Open(cfg)
	}
	if err != nil {
		return nil, err
	}
	return repo.RetryBackend{Backend: be, OnRetry: func(op string, err error, wait time.Duration) {
		g.verbosef(1, "retrying %s in %v: %v\n", op, wait, err)
	}}, nil
}
