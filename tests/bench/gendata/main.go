// Command gendata writes the benchmark dataset, or mutates one it wrote.
//
//	gendata [-scale 1] [-n 8] [-seed 1] DIR     generate the dataset into DIR
//	gendata -mutate 5 [-mutate-seed 1] DIR      change about 5% of DIR's data
//
// At -scale 1 the dataset is about 2.0 GiB (the one in shared/FACTS.md):
//
//	large/random-NN.bin   N files of 128 MiB of random bytes (-n, default 8)
//	small/dNNN/fNNNNN.bin 20,000 files of 1-64 KiB of random bytes, 100 a dir
//	dup/dup-256.bin       256 MiB duplicating data already in large/: the
//	                      bytes of random-00 followed by those of random-01
//	                      (random-00 twice when -n 1; with -n 0 one separate
//	                      random 128 MiB stream written twice)
//	logs/app-N.log        4 files, 100 MiB in all, of log-like text
//
// -scale multiplies the large, duplicate and log sizes and the number of small
// files (small-file sizes stay 1-64 KiB). The same flags always give the same
// bytes. -small, -per-dir and -small-max set the number of small files, how
// many share a directory and their largest size instead (the remote benchmark
// uses 10,000 files of 1-8 KiB, 5 a directory: many trees, little data);
// -small-only writes nothing else (the many-small-files dataset of the rows
// suite: 200,000 files of 1-2 KiB, about 0.3 GiB).
//
// -mutate PCT changes about PCT percent of the data in place, deterministically
// for a given -mutate-seed: files of 1 MiB or more get PCT% of their bytes
// overwritten in 4 regions at random offsets (size unchanged), PCT% of the
// smaller files are rewritten with new content and size, and each *.log file
// grows by PCT% of new lines.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	MiB           = 1 << 20
	largeSize     = 128 * MiB
	dupSize       = 256 * MiB
	logTotal      = 100 * MiB
	logFiles      = 4
	smallCount    = 20000
	smallMin      = 1 << 10
	smallMax      = 64 << 10
	smallPerDir   = 100
	mutateRegions = 4
	bufSize       = 1 * MiB
)

var (
	scale      = flag.Float64("scale", 1, "scale factor for sizes and the number of small files")
	nLarge     = flag.Int("n", 8, "number of large random files (128 MiB × scale each)")
	seed       = flag.Uint64("seed", 1, "seed of the dataset")
	mutatePct  = flag.Float64("mutate", 0, "instead of generating, change about this percentage of DIR's data")
	mutateSeed = flag.Uint64("mutate-seed", 1, "seed of the mutation (use another one for a second round)")
	smallN     = flag.Int("small", -1, "number of small files (default 20,000 × scale)")
	perDir     = flag.Int("per-dir", smallPerDir, "small files per directory")
	smallMaxF  = flag.Int("small-max", smallMax, "largest small-file size in bytes (at least 1 KiB)")
	smallOnly  = flag.Bool("small-only", false, "write only the small files (no large, duplicate or log files)")
	jobs       = flag.Int("j", runtime.NumCPU(), "files written in parallel")
	quiet      = flag.Bool("q", false, "print nothing but errors")
)

func usage() {
	fmt.Fprintf(os.Stderr, "usage: gendata [flags] DIR\n       gendata -mutate PCT [flags] DIR\n\nflags:\n")
	flag.PrintDefaults()
}

func main() {
	flag.Usage = usage
	flag.Parse()
	if flag.NArg() != 1 || *scale <= 0 || *nLarge < 0 || *mutatePct < 0 || *mutatePct > 100 || *jobs < 1 ||
		*perDir < 1 || *smallMaxF < smallMin {
		usage()
		os.Exit(2)
	}
	dir := flag.Arg(0)
	start := time.Now()
	var (
		files int
		bytes int64
		err   error
		what  string
	)
	if *mutatePct > 0 {
		what = "mutated"
		files, bytes, err = mutate(dir, *mutatePct, *mutateSeed)
	} else {
		what = "generated"
		files, bytes, err = generate(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendata:", err)
		os.Exit(1)
	}
	if !*quiet {
		fmt.Printf("gendata: %s %d files, %d bytes (%.1f MiB) in %s in %v\n",
			what, files, bytes, float64(bytes)/MiB, dir, time.Since(start).Round(time.Millisecond))
	}
}

func chacha(stream string, a, b uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[0:], a)
	binary.LittleEndian.PutUint64(s[8:], b)
	copy(s[16:], stream)
	return rand.NewChaCha8(s)
}

// job writes one file.
type job struct {
	path  string
	write func(w *bufio.Writer, buf []byte) error
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

func runJobs(list []job) error {
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for range *jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bp := bufPool.Get().(*[]byte)
			defer bufPool.Put(bp)
			w := bufio.NewWriterSize(nil, bufSize)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(list) {
					return
				}
				if err := writeFile(list[i], w, *bp); err != nil {
					errOnce.Do(func() { first = err })
					next.Store(int64(len(list)))
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func writeFile(j job, w *bufio.Writer, buf []byte) error {
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	w.Reset(f)
	err = j.write(w, buf)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeRandom writes n bytes of the random stream src.
func writeRandom(w *bufio.Writer, buf []byte, src *rand.ChaCha8, n int64) error {
	for n > 0 {
		b := buf
		if int64(len(b)) > n {
			b = b[:n]
		}
		_, _ = src.Read(b)
		if _, err := w.Write(b); err != nil {
			return err
		}
		n -= int64(len(b))
	}
	return nil
}

func scaled(n int64) int64 { return int64(float64(n) * *scale) }

func generate(dir string) (files int, total int64, err error) {
	large := scaled(largeSize)
	var list []job
	add := func(rel string, size int64, write func(w *bufio.Writer, buf []byte) error) {
		list = append(list, job{path: filepath.Join(dir, rel), write: write})
		files++
		total += size
	}
	for _, d := range []string{"large", "small", "dup", "logs"} {
		if *smallOnly && d != "small" {
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return 0, 0, err
		}
	}
	if *smallOnly {
		if err := addSmall(dir, add); err != nil {
			return 0, 0, err
		}
		return files, total, runJobs(list)
	}

	// The duplicate goes first: it is the biggest job.
	dupStreams := []uint64{0, 1}
	switch *nLarge {
	case 0:
		dupStreams = []uint64{1 << 32, 1 << 32}
	case 1:
		dupStreams = []uint64{0, 0}
	}
	add("dup/dup-256.bin", scaled(dupSize), func(w *bufio.Writer, buf []byte) error {
		half := scaled(dupSize) / 2
		for i, s := range dupStreams {
			n := half
			if i == 1 {
				n = scaled(dupSize) - half
			}
			if err := writeRandom(w, buf, chacha("large", *seed, s), n); err != nil {
				return err
			}
		}
		return nil
	})
	for i := range *nLarge {
		add(fmt.Sprintf("large/random-%02d.bin", i), large, func(w *bufio.Writer, buf []byte) error {
			return writeRandom(w, buf, chacha("large", *seed, uint64(i)), large)
		})
	}
	logSize := scaled(logTotal) / logFiles
	for i := range logFiles {
		add(fmt.Sprintf("logs/app-%d.log", i), logSize, func(w *bufio.Writer, buf []byte) error {
			return writeLog(w, rand.New(rand.NewPCG(*seed, uint64(i))), logSize, i)
		})
	}
	if err := addSmall(dir, add); err != nil {
		return 0, 0, err
	}
	return files, total, runJobs(list)
}

// addSmall makes the small files' directories (-per-dir files each) and adds
// their jobs.
func addSmall(dir string, add func(rel string, size int64, write func(w *bufio.Writer, buf []byte) error)) error {
	nSmall := int(scaled(smallCount))
	if *smallN >= 0 {
		nSmall = *smallN
	}
	sizes := rand.New(rand.NewPCG(*seed, 1<<40))
	for i := range nSmall {
		d := fmt.Sprintf("small/d%03d", i / *perDir)
		if i%*perDir == 0 {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
		}
		size := int64(smallMin + sizes.IntN(*smallMaxF-smallMin+1))
		add(fmt.Sprintf("%s/f%05d.bin", d, i), size, func(w *bufio.Writer, buf []byte) error {
			return writeRandom(w, buf, chacha("small", *seed, uint64(i)), size)
		})
	}
	return nil
}

var (
	logLevels  = []string{"INFO", "INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR"}
	logMethods = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	logPaths   = []string{"/api/v1/items/", "/api/v1/users/", "/api/v1/orders/", "/healthz?probe=", "/api/v2/search?q=", "/static/js/app."}
	logStatus  = []int{200, 200, 200, 200, 201, 204, 304, 400, 404, 500}
	logSvcs    = []string{"api", "worker", "scheduler", "billing", "auth"}
	logMsgs    = []string{
		"request completed",
		"cache miss, fetching from backend",
		"slow query detected",
		"retrying after transient error: connection reset by peer",
		"user session refreshed",
		"rate limit approaching for client",
	}
	logBase = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
)

// writeLog writes about size bytes (whole lines) of log-like text.
func writeLog(w *bufio.Writer, r *rand.Rand, size int64, file int) error {
	ts := logBase.Add(time.Duration(file) * 24 * time.Hour).UnixMicro()
	line := make([]byte, 0, 512)
	for written := int64(0); written < size; {
		ts += int64(r.IntN(50000))
		t := time.UnixMicro(ts).UTC()
		line = t.AppendFormat(line[:0], "2006-01-02T15:04:05.000000Z07:00")
		line = append(line, ' ')
		line = append(line, logLevels[r.IntN(len(logLevels))]...)
		line = append(line, " ["...)
		line = append(line, logSvcs[r.IntN(len(logSvcs))]...)
		line = append(line, "/worker-"...)
		line = strconv.AppendInt(line, int64(r.IntN(16)), 10)
		line = append(line, "] "...)
		line = append(line, logMethods[r.IntN(len(logMethods))]...)
		line = append(line, ' ')
		line = append(line, logPaths[r.IntN(len(logPaths))]...)
		line = strconv.AppendInt(line, int64(r.IntN(100000)), 10)
		line = append(line, " status="...)
		line = strconv.AppendInt(line, int64(logStatus[r.IntN(len(logStatus))]), 10)
		line = append(line, " bytes="...)
		line = strconv.AppendInt(line, int64(r.IntN(65536)), 10)
		line = append(line, " dur="...)
		line = strconv.AppendFloat(line, float64(r.IntN(500000))/1000, 'f', 3, 64)
		line = append(line, "ms req="...)
		line = strconv.AppendUint(line, r.Uint64()&0xffffffffffff, 16)
		line = append(line, ` msg="`...)
		line = append(line, logMsgs[r.IntN(len(logMsgs))]...)
		line = append(line, "\"\n"...)
		if _, err := w.Write(line); err != nil {
			return err
		}
		written += int64(len(line))
	}
	return nil
}

type fileInfo struct {
	path string
	size int64
}

func mutate(dir string, pct float64, mseed uint64) (files int, changed int64, err error) {
	var big, small, logs []fileInfo
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		f := fileInfo{p, fi.Size()}
		switch {
		case strings.HasSuffix(p, ".log"):
			logs = append(logs, f)
		case fi.Size() >= MiB:
			big = append(big, f)
		default:
			small = append(small, f)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if len(big)+len(small)+len(logs) == 0 {
		return 0, 0, fmt.Errorf("no files to mutate in %s", dir)
	}
	frac := pct / 100
	r := rand.New(rand.NewPCG(mseed, 0x6d757461)) // structure of the mutation
	buf := make([]byte, bufSize)

	// Large files: overwrite frac of each in mutateRegions regions.
	for i, f := range big {
		region := int64(float64(f.size) * frac / mutateRegions)
		if region == 0 {
			continue
		}
		src := chacha("mutate", mseed, uint64(i))
		fh, err := os.OpenFile(f.path, os.O_WRONLY, 0)
		if err != nil {
			return 0, 0, err
		}
		for range mutateRegions {
			off := r.Int64N(f.size - region + 1)
			for n := int64(0); n < region; {
				b := buf[:min(int64(len(buf)), region-n)]
				_, _ = src.Read(b)
				if _, err := fh.WriteAt(b, off+n); err != nil {
					fh.Close()
					return 0, 0, err
				}
				n += int64(len(b))
			}
			changed += region
		}
		if err := fh.Close(); err != nil {
			return 0, 0, err
		}
		files++
	}

	// Small files: rewrite frac of them (at least one if there are any).
	sort.Slice(small, func(i, j int) bool { return small[i].path < small[j].path })
	nSmall := int(float64(len(small))*frac + 0.5)
	if nSmall == 0 && len(small) > 0 {
		nSmall = 1
	}
	var list []job
	for k, i := range r.Perm(len(small))[:nSmall] {
		size := int64(smallMin + r.IntN(*smallMaxF-smallMin+1))
		list = append(list, job{path: small[i].path, write: func(w *bufio.Writer, buf []byte) error {
			return writeRandom(w, buf, chacha("mutate-small", mseed, uint64(k)), size)
		}})
		changed += size
		files++
	}
	if err := runJobs(list); err != nil {
		return 0, 0, err
	}

	// Logs: append frac of their size in new lines.
	for i, f := range logs {
		add := int64(float64(f.size) * frac)
		if add == 0 {
			continue
		}
		fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return 0, 0, err
		}
		w := bufio.NewWriterSize(fh, bufSize)
		err = writeLog(w, rand.New(rand.NewPCG(mseed, 1<<32+uint64(i))), add, 100+i)
		if err == nil {
			err = w.Flush()
		}
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, 0, err
		}
		changed += add
		files++
	}
	return files, changed, nil
}
