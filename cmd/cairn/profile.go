package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiling writes a CPU profile to $CAIRN_CPUPROFILE and an execution
// trace to $CAIRN_TRACE when they are set: the benchmarks' way to see where
// a whole command's time goes. It returns the function that ends both.
func startProfiling() func() {
	var stops []func()
	for _, p := range []struct {
		env   string
		start func(io.Writer) error
		stop  func()
	}{
		{"CAIRN_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile},
		{"CAIRN_TRACE", trace.Start, trace.Stop},
	} {
		path := os.Getenv(p.env)
		if path == "" {
			continue
		}
		f, err := os.Create(path)
		if err == nil {
			if err = p.start(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "cairn: %s: %v\n", p.env, err)
			continue
		}
		stops = append(stops, func() { p.stop(); f.Close() })
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}
