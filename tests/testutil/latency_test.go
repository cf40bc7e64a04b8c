package testutil

import (
	"net/http"
	"testing"
	"time"
)

// TestMinIOWithLatency: requests to the MinIO behind the proxy take at
// least a round trip longer than to the server itself, and get the same
// answer.
func TestMinIOWithLatency(t *testing.T) {
	const d = 25 * time.Millisecond
	m := StartMinIOWithLatency(t, d)
	if m.Endpoint == m.Direct {
		t.Fatal("Endpoint is the server itself, want the proxy")
	}
	head := func(addr string) (int, time.Duration) {
		t.Helper()
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		start := time.Now()
		resp, err := c.Head("http://" + addr + "/some-bucket/some-object")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	direct, _ := head(m.Direct)
	proxied, took := head(m.Endpoint)
	if proxied != direct {
		t.Errorf("through the proxy: HTTP %d, directly: %d", proxied, direct)
	}
	// A new connection: the TCP handshake (SYN/ACK with the proxy is local)
	// then the request and its answer, each delayed once.
	if took < 2*d {
		t.Errorf("a request through the proxy took %v, want at least %v", took, 2*d)
	}
}
