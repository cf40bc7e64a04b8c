package chunk

import (
	"bytes"
	"io"
	"runtime"
	"syscall"
	"testing"

	"github.com/restic/chunker"
)

// cpuRate reports bytes per second of this thread's CPU time as well: on
// a shared machine that is steadier than the wall clock.
func cpuRate(b *testing.B, bytes int) func() {
	runtime.LockOSThread()
	t0 := threadCPU()
	return func() {
		b.ReportMetric(float64(b.N)*float64(bytes)/float64(threadCPU()-t0)*1e3, "cpu-MB/s")
		runtime.UnlockOSThread()
	}
}

func threadCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_THREAD, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkChunker cuts 64 MiB of random data held in memory, ours against
// restic/chunker, each reusing its chunker and one MaxSize buffer as the
// archiver does.
func BenchmarkChunker(b *testing.B) {
	data := randomBytes(64<<20, 50)
	buf := make([]byte, MaxSize)
	rd := bytes.NewReader(data)
	b.Run("cairn", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		defer cpuRate(b, len(data))()
		c := New(nil, testPol)
		for b.Loop() {
			rd.Reset(data)
			c.Reset(rd, testPol)
			n := 0
			for {
				ch, err := c.Next(buf)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n += len(ch)
			}
			if n != len(data) {
				b.Fatal(n)
			}
		}
	})
	b.Run("restic", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		defer cpuRate(b, len(data))()
		c := chunker.New(nil, testPol)
		for b.Loop() {
			rd.Reset(data)
			c.Reset(rd, testPol)
			n := 0
			for {
				ch, err := c.Next(buf)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n += len(ch.Data)
			}
			if n != len(data) {
				b.Fatal(n)
			}
		}
	})
}

// BenchmarkScan is the fingerprint loop alone, one lane and two.
func BenchmarkScan(b *testing.B) {
	data := randomBytes(1<<20, 51)
	tab, err := tablesFor(testPol)
	if err != nil {
		b.Fatal(err)
	}
	for name, scan := range map[string]func([]byte, uint64, uint64) (int, uint64){"1lane": tab.scan1, "4lanes": tab.scan4, "rounds": tab.scan} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			defer cpuRate(b, len(data))()
			for b.Loop() {
				if p, _ := scan(data, 0, 1<<40-1); p >= 0 {
					b.Fatal(p)
				}
			}
		})
	}
}
