// Package s3 is a repository backend on S3-compatible object storage, in
// restic's default layout so either tool reads the other's repositories.
package s3

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"unicode"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Config says where the repository lives and how to talk to the store.
type Config struct {
	Endpoint     string // host[:port]
	UseHTTP      bool
	Bucket       string
	Prefix       string // "" or "a/b" (no slashes at the ends)
	Region       string
	BucketLookup string // auto, dns, path
	StorageClass string
	Connections  int
	CACert       string // PEM file to trust in addition to the system roots
	InsecureTLS  bool
	KeyID        string
	Secret       string
	SessionToken string
	Profile      string // AWS_PROFILE for the shared credentials file
}

// IsLocation reports whether loc names an S3 repository.
func IsLocation(loc string) bool { return strings.HasPrefix(loc, "s3:") }

// ErrCredentialsInURL is returned for a location with ID:SECRET@ in it.
// cairn refuses rather than uses them: a URL ends up in shell history,
// process lists and logs, so secrets belong in the environment.
var ErrCredentialsInURL = errors.New("credentials in the S3 location are not used")

// bucketChars are the characters S3 stores allow in bucket names (upper
// case and '_' only in legacy and MinIO buckets).
const bucketChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"

// DefaultConnections bounds the requests in flight to the object store.
// restic uses 5; cairn loads trees and index files up to 32 at a time, and
// over a 40 ms round trip 5 connections held a cold find of 2,000
// directories at 20 s against 5 s with 32. Object stores serve thousands of
// requests a second per prefix; uploads stay bounded by the packers.
const DefaultConnections = 16

// ParseLocation parses restic's S3 URL forms: s3:https://host[:port]/bucket[/prefix],
// s3:http://…, and s3:host[:port]/bucket[/prefix] (https). Errors never
// repeat credentials found in loc.
func ParseLocation(loc string) (Config, error) {
	cfg := Config{BucketLookup: "auto", Connections: DefaultConnections}
	shown := Redact(loc)
	if !IsLocation(loc) {
		return cfg, fmt.Errorf("%q is not an s3: location", shown)
	}
	if shown != loc {
		return cfg, fmt.Errorf("%w: %q; remove the user:password@ part and set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead", ErrCredentialsInURL, shown)
	}
	rest := strings.TrimPrefix(loc, "s3:")
	// "?", "#" and "%" would be a query, a fragment and an escape in the
	// s3:https://… form but plain characters in the s3:host/… form; no
	// bucket may hold them, so refuse them in both forms alike.
	if strings.ContainsAny(rest, "?#%\\ ") || strings.ContainsFunc(rest, unicode.IsControl) {
		return cfg, fmt.Errorf("invalid S3 location %q: spaces, control characters, ?, #, %% and backslashes are not allowed; want s3:https://HOST[:PORT]/BUCKET[/PREFIX]", shown)
	}
	var hostPath string
	if strings.HasPrefix(rest, "http://") || strings.HasPrefix(rest, "https://") {
		u, err := url.Parse(rest)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error repeats the whole URL
			}
			return cfg, fmt.Errorf("invalid S3 location %q: %w", shown, err)
		}
		cfg.UseHTTP = u.Scheme == "http"
		hostPath = u.Host + "/" + strings.TrimPrefix(u.Path, "/")
	} else {
		hostPath = strings.TrimPrefix(rest, "//")
	}
	host, p, _ := strings.Cut(hostPath, "/")
	p = strings.Trim(path.Clean("/"+p), "/")
	bucket, prefix, _ := strings.Cut(p, "/")
	if host == "" || bucket == "" {
		return cfg, fmt.Errorf("invalid S3 location %q: want s3:https://HOST[:PORT]/BUCKET[/PREFIX]", shown)
	}
	if u, err := url.Parse("https://" + host + "/"); err != nil || u.Host != host || u.Hostname() == "" {
		return cfg, fmt.Errorf("invalid S3 location %q: %q is not a HOST[:PORT]", shown, host)
	}
	if strings.Trim(bucket, bucketChars) != "" {
		return cfg, fmt.Errorf("invalid S3 location %q: bucket %q may hold only letters, digits, '.', '-' and '_'", shown, bucket)
	}
	// minio-go refuses such a name before sending anything; said here,
	// the user hears it at once instead of after the retries.
	if err := s3utils.CheckValidBucketName(bucket); err != nil {
		return cfg, fmt.Errorf("invalid S3 location %q: bucket %q: %v (bucket names are 3 to 63 characters)", shown, bucket, err)
	}
	cfg.Endpoint, cfg.Bucket, cfg.Prefix = host, bucket, prefix
	return cfg, nil
}

// Redact replaces the user information (ID:SECRET@) of a repository
// location with "***@", so the location can be shown.
func Redact(loc string) string {
	scheme, rest, ok := strings.Cut(loc, ":")
	if !ok {
		return loc
	}
	inner := rest
	if s, r, ok := strings.Cut(rest, "://"); ok && !strings.Contains(s, "/") {
		inner = r // s3:http://…
	}
	inner = strings.TrimPrefix(inner, "//")
	authority, _, _ := strings.Cut(inner, "/")
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return loc
	}
	start := len(loc) - len(inner)
	return scheme + ":" + loc[len(scheme)+1:start] + "***@" + loc[start+at+1:]
}

// ApplyEnv fills credentials and region from the AWS environment variables
// (getenv nil means os.Getenv).
func (c *Config) ApplyEnv(getenv func(string) string) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c.KeyID = getenv("AWS_ACCESS_KEY_ID")
	c.Secret = getenv("AWS_SECRET_ACCESS_KEY")
	c.SessionToken = getenv("AWS_SESSION_TOKEN")
	c.Profile = getenv("AWS_PROFILE")
	if c.Region == "" {
		c.Region = getenv("AWS_REGION")
	}
	if c.Region == "" {
		c.Region = getenv("AWS_DEFAULT_REGION")
	}
}

// OptionKeys are the -o keys this backend understands.
var OptionKeys = []string{"s3.region", "s3.bucket-lookup", "s3.storage-class", "s3.connections"}

// ApplyOption sets one -o s3.* option.
func (c *Config) ApplyOption(key, value string) error {
	switch key {
	case "s3.region":
		c.Region = value
	case "s3.bucket-lookup":
		switch value {
		case "auto", "dns", "path":
			c.BucketLookup = value
		default:
			return fmt.Errorf("invalid s3.bucket-lookup %q: use auto, dns or path", value)
		}
	case "s3.storage-class":
		c.StorageClass = value
	case "s3.connections":
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > 256 {
			return fmt.Errorf("invalid s3.connections %q: want a number from 1 to 256", value)
		}
		c.Connections = n
	default:
		return fmt.Errorf("unknown option %q", key)
	}
	return nil
}
