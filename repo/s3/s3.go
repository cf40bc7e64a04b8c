package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func init() {
	// Retries are done by repo.Retry with our own error classification;
	// minio-go's internal retries would multiply them.
	minio.MaxRetry = 1
}

// Backend stores a repository under a bucket prefix.
type Backend struct {
	cfg    Config
	client *minio.Client
	core   minio.Core
	sem    chan struct{}
}

var _ repo.Backend = (*Backend)(nil)

var dirNames = map[repo.FileType]string{
	repo.KeyFile: "keys", repo.LockFile: "locks", repo.SnapshotFile: "snapshots",
	repo.IndexFile: "index", repo.PackFile: "data",
}

func transport(cfg Config) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.Connections + 2
	tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = 5 * time.Minute
	if cfg.CACert != "" || cfg.InsecureTLS {
		tc := &tls.Config{InsecureSkipVerify: cfg.InsecureTLS} //nolint:gosec // the user asked for it
		if cfg.CACert != "" {
			pem, err := os.ReadFile(cfg.CACert)
			if err != nil {
				return nil, fmt.Errorf("read --cacert: %w", err)
			}
			pool, _ := x509.SystemCertPool()
			if pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--cacert %s holds no PEM certificate", cfg.CACert)
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
	}
	return tr, nil
}

// credentialsFor picks static keys from the environment, else the shared
// credentials file. The EC2/ECS metadata service is deliberately not asked:
// it is a network endpoint the user did not name.
func credentialsFor(cfg Config) *credentials.Credentials {
	if cfg.KeyID != "" || cfg.Secret != "" {
		return credentials.NewStaticV4(cfg.KeyID, cfg.Secret, cfg.SessionToken)
	}
	return credentials.NewFileAWSCredentials("", cfg.Profile)
}

// Open connects to the store; it does not check that the bucket exists.
func Open(cfg Config) (*Backend, error) {
	tr, err := transport(cfg)
	if err != nil {
		return nil, err
	}
	lookup := minio.BucketLookupAuto
	switch cfg.BucketLookup {
	case "dns":
		lookup = minio.BucketLookupDNS
	case "path":
		lookup = minio.BucketLookupPath
	}
	creds := credentialsFor(cfg)
	if _, err := creds.GetWithContext(nil); err != nil {
		// Only the shared credentials file can fail here, and reading it
		// again will not help: say so now, not after the retries.
		return nil, repo.Permanent(fmt.Errorf("s3 %s: no credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set and the shared credentials file gave none (%v); set them, or AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE",
			cfg.Endpoint, err))
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds: creds, Secure: !cfg.UseHTTP, Transport: tr,
		Region: cfg.Region, BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 %s: %w", cfg.Endpoint, err)
	}
	if cfg.Connections < 1 {
		cfg.Connections = DefaultConnections
	}
	return &Backend{cfg: cfg, client: client, core: minio.Core{Client: client}, sem: make(chan struct{}, cfg.Connections)}, nil
}

// Create opens the store and makes the bucket when it is missing.
func Create(ctx context.Context, cfg Config) (*Backend, error) {
	be, err := Open(cfg)
	if err != nil {
		return nil, err
	}
	ok, err := be.client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, be.wrap("check bucket", err)
	}
	if !ok {
		if err := be.client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
			return nil, be.wrap("create bucket", err)
		}
	}
	return be, nil
}

// CheckBucket returns a clear error when the bucket is missing or the
// credentials are refused.
func (b *Backend) CheckBucket(ctx context.Context) error {
	ok, err := b.client.BucketExists(ctx, b.cfg.Bucket)
	if err != nil {
		return b.wrap("open repository", err)
	}
	if !ok {
		return fmt.Errorf("bucket %q does not exist at %s: %w (create the repository with `cairn init`)", b.cfg.Bucket, b.cfg.Endpoint, repo.ErrNotExist)
	}
	return nil
}

func (b *Backend) Location() string {
	scheme := "https"
	if b.cfg.UseHTTP {
		scheme = "http"
	}
	return "s3:" + scheme + "://" + path.Join(b.cfg.Endpoint, b.cfg.Bucket, b.cfg.Prefix)
}

func (b *Backend) object(h repo.Handle) string {
	var name string
	switch {
	case h.Type == repo.ConfigFile:
		name = "config"
	case h.Type == repo.PackFile && len(h.Name) >= 2:
		name = path.Join("data", h.Name[:2], h.Name)
	default:
		name = path.Join(dirNames[h.Type], h.Name)
	}
	if b.cfg.Prefix != "" {
		name = b.cfg.Prefix + "/" + name
	}
	return name
}

// ErrCredentials marks a refused signature or key.
var ErrCredentials = errors.New("access denied")

// wrap turns S3 error codes into the repository's sentinel errors.
func (b *Backend) wrap(op string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey", "NotFound":
		return fmt.Errorf("%s: %w", op, repo.ErrNotExist)
	case "NoSuchBucket":
		return fmt.Errorf("%s: bucket %q does not exist: %w (create the repository with `cairn init`)", op, b.cfg.Bucket, repo.ErrNotExist)
	case "InvalidBucketName", "XMinioInvalidObjectName", "InvalidObjectName":
		return repo.Permanent(fmt.Errorf("%s: %w", op, err))
	case "XMinioStorageFull", "XMinioAdminBucketQuotaExceeded", "QuotaExceeded":
		// Retrying cannot free space: say so at once.
		return repo.Permanent(fmt.Errorf("%s: the object store at %s is full or over its quota (%s): free space or raise the quota, then run the command again", op, b.cfg.Endpoint, resp.Code))
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken":
		return repo.Permanent(fmt.Errorf("%s: %w by %s (%s): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", op, ErrCredentials, b.cfg.Endpoint, resp.Code))
	}
	if resp.StatusCode == http.StatusInsufficientStorage {
		return repo.Permanent(fmt.Errorf("%s: the object store at %s has no space left (HTTP 507): free space, then run the command again", op, b.cfg.Endpoint))
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%s: %w", op, repo.ErrNotExist)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func (b *Backend) acquire(ctx context.Context) error {
	select {
	case b.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Backend) release() { <-b.sem }

func (b *Backend) Save(ctx context.Context, h repo.Handle, rd io.Reader, size int64) error {
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", StorageClass: b.cfg.StorageClass,
		DisableMultipart: size < 64<<20}
	var info minio.UploadInfo
	var err error
	if h.Type == repo.PackFile && size < 64<<20 && len(h.Name) == 2*repo.IDSize {
		// A pack's name is the SHA-256 of its bytes, computed as it was
		// written: the request is signed with it (the server checks it)
		// instead of minio-go hashing every byte again for a streaming
		// signature over plain HTTP.
		opts.DisableContentSha256 = true
		info, err = b.core.PutObject(ctx, b.cfg.Bucket, b.object(h), rd, size, "", h.Name, opts)
	} else {
		info, err = b.client.PutObject(ctx, b.cfg.Bucket, b.object(h), rd, size, opts)
	}
	if err != nil {
		return b.wrap(fmt.Sprintf("save %v", h), err)
	}
	if info.Size != size {
		return fmt.Errorf("save %v: stored %d bytes, expected %d", h, info.Size, size)
	}
	return nil
}

type releaseOnClose struct {
	io.ReadCloser
	release func()
}

func (r *releaseOnClose) Close() error {
	err := r.ReadCloser.Close()
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return err
}

func (b *Backend) Load(ctx context.Context, h repo.Handle, length int, offset int64) (io.ReadCloser, error) {
	if length < 0 || offset < 0 {
		return nil, fmt.Errorf("load %v: invalid range %d+%d", h, offset, length)
	}
	if err := b.acquire(ctx); err != nil {
		return nil, err
	}
	opts := minio.GetObjectOptions{}
	var err error
	switch {
	case length > 0:
		err = opts.SetRange(offset, offset+int64(length)-1)
	case offset > 0:
		err = opts.SetRange(offset, 0)
	}
	if err != nil {
		b.release()
		return nil, fmt.Errorf("load %v: %w", h, err)
	}
	rd, _, _, err := b.core.GetObject(ctx, b.cfg.Bucket, b.object(h), opts)
	if err != nil {
		b.release()
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			return io.NopCloser(strings.NewReader("")), nil // offset at the very end
		}
		return nil, b.wrap(fmt.Sprintf("load %v", h), err)
	}
	return &releaseOnClose{ReadCloser: rd, release: b.release}, nil
}

func (b *Backend) Stat(ctx context.Context, h repo.Handle) (repo.FileInfo, error) {
	if err := b.acquire(ctx); err != nil {
		return repo.FileInfo{}, err
	}
	defer b.release()
	info, err := b.client.StatObject(ctx, b.cfg.Bucket, b.object(h), minio.StatObjectOptions{})
	if err != nil {
		return repo.FileInfo{}, b.wrap(fmt.Sprintf("stat %v", h), err)
	}
	return repo.FileInfo{Name: h.Name, Size: info.Size}, nil
}

func (b *Backend) List(ctx context.Context, t repo.FileType, fn func(repo.FileInfo) error) error {
	if t == repo.ConfigFile {
		return fmt.Errorf("list: config is not a directory")
	}
	prefix := dirNames[t] + "/"
	if b.cfg.Prefix != "" {
		prefix = b.cfg.Prefix + "/" + prefix
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine when fn fails
	// Paginated by minio-go (1000 keys per request).
	for obj := range b.client.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return b.wrap(fmt.Sprintf("list %v", t), obj.Err)
		}
		name := path.Base(obj.Key)
		if strings.HasSuffix(obj.Key, "/") || (t != repo.PackFile && path.Dir(obj.Key) != strings.TrimSuffix(prefix, "/")) {
			continue
		}
		if err := fn(repo.FileInfo{Name: name, Size: obj.Size}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (b *Backend) Remove(ctx context.Context, h repo.Handle) error {
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	if err := b.client.RemoveObject(ctx, b.cfg.Bucket, b.object(h), minio.RemoveObjectOptions{}); err != nil {
		return b.wrap(fmt.Sprintf("remove %v", h), err)
	}
	return nil
}

func (b *Backend) Close() error { return nil }
