package s3

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
)

// FuzzParseLocation: no panic; an accepted location names a host and a
// bucket, a prefix without empty, "." or ".." parts, and prints back to a
// location that parses the same; credentials in the URL never end up in
// the endpoint or in an error message.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{
		"s3:https://s3.amazonaws.com/bucket/a/b", "s3:http://localhost:9000/b", "s3:host:9000/b/p/",
		"s3://host/b", "s3:https://host", "s3:https://host/../b/../../c", "s3:http://[::1]:9000/b",
		"s3:http://ID:SECRET@host/b", "s3:https://%zz/b", "s3:", "s3:/b", "local/path",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, loc string) {
		var secret string // user:password@ as written
		if u, err := url.Parse(strings.TrimPrefix(loc, "s3:")); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				secret = u.User.String() + "@"
			}
		}
		cfg, err := ParseLocation(loc)
		if err != nil {
			if secret != "" && strings.Contains(err.Error(), secret) {
				// testdata/fuzz/FuzzParseLocation/82469f8d8fbf50a8
				t.Fatalf("error for %q shows the secret: %v", loc, err)
			}
			return
		}
		if u, err := url.Parse("https://" + cfg.Endpoint + "/"); err != nil || u.Host != cfg.Endpoint {
			// testdata/fuzz/FuzzParseLocation/ce34c9cc8980bfe8: "s3: /0"
			t.Fatalf("%q: endpoint %q is no host", loc, cfg.Endpoint)
		}
		if strings.Trim(cfg.Bucket, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != "" ||
			strings.ContainsAny(cfg.Prefix, "#?%") || strings.ContainsFunc(cfg.Prefix, unicode.IsControl) {
			// testdata/fuzz/FuzzParseLocation/c22a9575e20f8ecd and 4459fce3b7f68770:
			// a bucket no store allows; characters the two forms read differently.
			t.Fatalf("%q: bucket %q / prefix %q accepted", loc, cfg.Bucket, cfg.Prefix)
		}
		if cfg.Endpoint == "" || cfg.Bucket == "" || strings.Contains(cfg.Bucket, "/") {
			t.Fatalf("%q: endpoint %q, bucket %q", loc, cfg.Endpoint, cfg.Bucket)
		}
		if strings.Contains(cfg.Endpoint, "@") || strings.Contains(cfg.Endpoint, "/") {
			t.Fatalf("%q: endpoint %q holds credentials or a path", loc, cfg.Endpoint)
		}
		if cfg.Prefix != "" {
			for _, c := range strings.Split(cfg.Prefix, "/") {
				if c == "" || c == "." || c == ".." {
					t.Fatalf("%q: prefix %q has part %q", loc, cfg.Prefix, c)
				}
			}
		}
		scheme := "https://"
		if cfg.UseHTTP {
			scheme = "http://"
		}
		again := "s3:" + scheme + cfg.Endpoint + "/" + cfg.Bucket
		if cfg.Prefix != "" {
			again += "/" + cfg.Prefix
		}
		cfg2, err := ParseLocation(again)
		if err != nil || cfg2 != cfg {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", loc, cfg, again, cfg2, err)
		}
	})
}
