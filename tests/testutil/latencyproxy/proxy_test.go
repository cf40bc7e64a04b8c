package latencyproxy

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer answers every connection with what it reads, until EOF.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

func startProxy(t *testing.T, target string, d time.Duration) *Proxy {
	t.Helper()
	p, err := Start("127.0.0.1:0", target, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestRoundTripIsDelayedBothWays(t *testing.T) {
	const d = 30 * time.Millisecond
	p := startProxy(t, echoServer(t), d)
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 5)
	for i := range 3 {
		start := time.Now()
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if rtt := time.Since(start); rtt < 2*d {
			t.Errorf("round trip %d took %v, want at least %v (%v each way)", i, rtt, 2*d, d)
		}
		if string(buf) != "hello" {
			t.Fatalf("echo = %q, want hello", buf)
		}
	}
}

func TestBytesPassIntactBothWays(t *testing.T) {
	p := startProxy(t, echoServer(t), 5*time.Millisecond)
	want := make([]byte, 8<<20+12345)
	rand.Read(want)
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for off := 0; off < len(want); off += 1000 {
			if _, err := c.Write(want[off:min(off+1000, len(want))]); err != nil {
				t.Error(err)
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c) // ends when the echo's half-close came back through the proxy
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes back, want the %d sent, unchanged", len(got), len(want))
	}
}

// A proxy that slept once per chunk would need at least chunks×delay; the
// pipelined one needs about one delay plus the copy. The bound is a quarter
// of the serialized time, far from both.
func TestLargeTransferIsNotThrottled(t *testing.T) {
	const (
		d    = 20 * time.Millisecond
		size = 64 << 20
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	received := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		received <- n
	}()
	p := startProxy(t, ln.Addr().String(), d)
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	start := time.Now()
	for range size / len(buf) {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	n := <-received
	elapsed := time.Since(start)
	if n != size {
		t.Fatalf("server received %d bytes, want %d", n, size)
	}
	serialized := time.Duration(size/chunkSize) * d
	if elapsed > serialized/4 {
		t.Errorf("64 MiB took %v through a %v proxy: throttled (one sleep per %d KiB chunk would take %v)",
			elapsed, d, chunkSize>>10, serialized)
	}
	t.Logf("64 MiB through a %v proxy in %v", d, elapsed)
}

func TestListensOnLoopbackOnly(t *testing.T) {
	if _, err := Start("0.0.0.0:0", "127.0.0.1:1", time.Millisecond); err == nil {
		t.Fatal("Start on 0.0.0.0 succeeded, want an error: the proxy listens on 127.0.0.1 only")
	}
}

// Each direction on its own: the server sees the request at least d after
// it was sent, and the client the reply at least d after it was sent.
func TestEachDirectionIsDelayed(t *testing.T) {
	const d = 30 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	arrived := make(chan time.Time, 1)
	replySent := make(chan time.Time, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil {
			return
		}
		arrived <- time.Now()
		replySent <- time.Now()
		c.Write(b)
	}()
	p := startProxy(t, ln.Addr().String(), d)
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := time.Now()
	c.Write([]byte{1})
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	got := time.Now()
	if up := (<-arrived).Sub(sent); up < d {
		t.Errorf("client to server took %v, want at least %v", up, d)
	}
	if down := got.Sub(<-replySent); down < d {
		t.Errorf("server to client took %v, want at least %v", down, d)
	}
}
