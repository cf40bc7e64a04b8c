// Package latencyproxy is a TCP proxy on 127.0.0.1 that delays every byte by
// a fixed time in each direction, to put a remote object store's round trip
// in front of a server on loopback (MinIO) in tests and benchmarks.
//
// Only latency is added, never a bandwidth limit: each direction reads as
// fast as the sender writes, stamps every chunk with the time it was read and
// forwards it Delay after that, so chunks are in flight together (a pipe of
// length Delay), not one sleep per chunk.
package latencyproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// chunkSize is the largest read forwarded as one piece; queueLen bounds the
// chunks in flight per direction (queueLen×chunkSize bytes per Delay is the
// highest rate the proxy passes: 4096×64 KiB per 20 ms is about 12 GiB/s).
const (
	chunkSize = 64 << 10
	queueLen  = 4096
)

// Proxy forwards connections from Addr to a target address.
type Proxy struct {
	Addr   string // 127.0.0.1:PORT the proxy listens on
	target string
	delay  time.Duration
	ln     net.Listener

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Start listens on listen (an address on 127.0.0.1; "127.0.0.1:0" picks a
// port) and forwards every connection to target, each direction delayed by
// delay.
func Start(listen, target string, delay time.Duration) (*Proxy, error) {
	if delay < 0 {
		return nil, fmt.Errorf("latency proxy: negative delay %v: give a delay of 0 or more", delay)
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("latency proxy: listen address %q: %w (want 127.0.0.1:PORT)", listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("latency proxy: listen address %q is not on loopback: use 127.0.0.1:PORT", listen)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("latency proxy: %w", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, delay: delay, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Close stops listening and cuts every open connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !add {
		delete(p.conns, c)
		return true
	}
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			p.mu.Lock()
			for c := range p.conns {
				c.Close()
			}
			p.conns = nil
			p.mu.Unlock()
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, true) || !p.track(server, true) {
		client.Close()
		server.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(server, client) }()
	go func() { defer wg.Done(); p.pipe(client, server) }()
	wg.Wait()
	client.Close()
	server.Close()
	p.track(client, false)
	p.track(server, false)
}

// chunk is n bytes read from one side, due on the other at due; a nil buf
// is the end of the stream (its half-close is delayed like data).
type chunk struct {
	buf *[]byte
	n   int
	due time.Time
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// pipe copies src to dst, each chunk delay after it was read. The reader
// never waits for the writer (up to queueLen chunks), so the delay is paid
// once per chunk in flight, not once per chunk.
func (p *Proxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, queueLen)
	go func() {
		defer close(q)
		for {
			b := bufPool.Get().(*[]byte)
			n, err := src.Read(*b)
			if n > 0 {
				q <- chunk{buf: b, n: n, due: time.Now().Add(p.delay)}
			} else {
				bufPool.Put(b)
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					// A reset connection: cut the other side too.
					dst.Close()
					return
				}
				q <- chunk{due: time.Now().Add(p.delay)}
				return
			}
		}
	}()
	failed := false
	for c := range q {
		if failed {
			if c.buf != nil {
				bufPool.Put(c.buf)
			}
			continue
		}
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		if c.buf == nil {
			// src ended: pass the half-close on, so a peer that waits
			// for the end of a request sees it.
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			continue
		}
		if _, err := dst.Write((*c.buf)[:c.n]); err != nil {
			failed = true
			src.Close() // unblocks the reader, which then drains
		}
		bufPool.Put(c.buf)
	}
}
