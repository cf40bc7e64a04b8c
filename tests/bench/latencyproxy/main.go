// Command latencyproxy forwards a port on 127.0.0.1 to a target, delaying
// each direction by a fixed time: a remote object store's round trip in
// front of a MinIO on loopback, for the benchmarks.
//
//	latencyproxy -listen 127.0.0.1:9100 -target 127.0.0.1:9000 -delay 20ms
//
// It prints "listening on 127.0.0.1:PORT" once ready (useful with port 0) and
// runs until killed.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-backup/cairn/tests/testutil/latencyproxy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (127.0.0.1 only)")
	target := flag.String("target", "", "address to forward to (host:port)")
	delay := flag.Duration("delay", 0, "delay added to each direction (a round trip gets twice this)")
	flag.Parse()
	if *target == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: latencyproxy -target HOST:PORT [-listen 127.0.0.1:PORT] [-delay 20ms]")
		os.Exit(2)
	}
	p, err := latencyproxy.Start(*listen, *target, *delay)
	if err != nil {
		fmt.Fprintln(os.Stderr, "latencyproxy:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", p.Addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	p.Close()
}
