package testutil

import (
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/testutil/latencyproxy"
)

// StartLatencyProxy forwards a port on 127.0.0.1 to target, delaying each
// direction by delay (2×delay per round trip, bandwidth untouched). It is
// closed when the test ends.
func StartLatencyProxy(t testing.TB, target string, delay time.Duration) *latencyproxy.Proxy {
	t.Helper()
	p, err := latencyproxy.Start("127.0.0.1:0", target, delay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// StartMinIOWithLatency starts MinIO as a remote object store: clients reach
// it through Endpoint (and URL, Env), a proxy that delays each direction by
// delay; Direct is the server itself. Start and Stop restart the server
// behind the same proxy.
func StartMinIOWithLatency(t testing.TB, delay time.Duration) *MinIO {
	t.Helper()
	m := StartMinIO(t)
	m.Endpoint = StartLatencyProxy(t, m.Direct, delay).Addr
	return m
}
