package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/snapshot"
)

// progressDisplay draws a status line for a long operation: on a terminal
// one line on stderr redrawn in place (\r, clear line); when forced with
// $CAIRN_PROGRESS_FPS on a non-terminal, one plain line per update.
type progressDisplay struct {
	g        *globalOptions
	p        *snapshot.Progress
	unit     string // what Files counts: "files", "packs", ...
	terminal bool
	start    time.Time
	drawn    bool // a status line is on screen; guarded by g.outMu
	stop     chan struct{}
	done     chan struct{}
}

// startProgress shows p until the returned function is called. Nothing is
// shown with -q or --json, or when stderr is not a terminal (unless
// $CAIRN_PROGRESS_FPS asks for updates anyway).
func (g *globalOptions) startProgress(p *snapshot.Progress, unit string) func() {
	fps := 4.0
	forced := false
	if s := g.env.getenv("CAIRN_PROGRESS_FPS"); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
			fps, forced = min(f, 60), true
		}
	}
	if g.quiet || g.json || (!g.env.stderrTerminal && !forced) {
		return func() {}
	}
	d := &progressDisplay{
		g: g, p: p, unit: unit, terminal: g.env.stderrTerminal, start: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	g.outMu.Lock()
	g.progress = d
	g.outMu.Unlock()
	go d.loop(time.Duration(float64(time.Second) / fps))
	return func() {
		close(d.stop)
		<-d.done
		g.outMu.Lock()
		d.clear()
		g.progress = nil
		g.outMu.Unlock()
	}
}

// progressShown reports whether a display started by startProgress runs.
func (g *globalOptions) progressShown() bool {
	g.outMu.Lock()
	defer g.outMu.Unlock()
	return g.progress != nil
}

func (d *progressDisplay) loop(every time.Duration) {
	defer close(d.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.draw()
		}
	}
}

// clear removes the status line; call with g.outMu held. Safe on nil.
func (d *progressDisplay) clear() {
	if d == nil || !d.drawn {
		return
	}
	fmt.Fprint(d.g.env.stderr, "\r\x1b[2K")
	d.drawn = false
}

func (d *progressDisplay) draw() {
	line := d.status(time.Since(d.start))
	d.g.outMu.Lock()
	defer d.g.outMu.Unlock()
	if !d.terminal {
		fmt.Fprintln(d.g.env.stderr, line)
		return
	}
	width := 80
	if d.g.env.termWidth != nil {
		if w := d.g.env.termWidth(); w > 0 {
			width = w
		}
	}
	fmt.Fprint(d.g.env.stderr, "\r\x1b[2K"+fitLine(line, d.p.Current(), width-1))
	d.drawn = true
}

// status is the text of the status line after elapsed time.
func (d *progressDisplay) status(elapsed time.Duration) string {
	p := d.p
	files, bytes := p.Files.Load(), p.Bytes.Load()
	totalFiles, totalBytes := p.TotalFiles.Load(), p.TotalBytes.Load()
	scanDone := p.ScanDone.Load()
	var b strings.Builder
	fmt.Fprintf(&b, "[%s]", formatDuration(elapsed))
	switch {
	case totalBytes > 0:
		fmt.Fprintf(&b, " %.2f%%", 100*float64(min(bytes, totalBytes))/float64(totalBytes))
	case totalFiles > 0:
		fmt.Fprintf(&b, " %.2f%%", 100*float64(min(files, totalFiles))/float64(totalFiles))
	}
	more := ""
	if !scanDone {
		more = "+" // totals still growing
	}
	switch {
	case totalFiles > 0:
		fmt.Fprintf(&b, "  %d / %d%s %s", files, totalFiles, more, d.unit)
	case files > 0:
		fmt.Fprintf(&b, "  %d %s", files, d.unit)
	}
	if totalBytes > 0 {
		fmt.Fprintf(&b, "  %s / %s%s", formatBytes(bytes), formatBytes(totalBytes), more)
	} else if bytes > 0 {
		fmt.Fprintf(&b, "  %s", formatBytes(bytes))
	}
	var rate float64
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(bytes) / s
		fmt.Fprintf(&b, "  %s/s", formatBytes(uint64(rate)))
	}
	if scanDone && rate > 0 && totalBytes > bytes {
		eta := time.Duration(float64(totalBytes-bytes) / rate * float64(time.Second))
		fmt.Fprintf(&b, "  ETA %s", formatDuration(eta))
	}
	if n := p.Errors.Load(); n > 0 {
		fmt.Fprintf(&b, "  %d errors", n)
	}
	if cur := p.Current(); cur != "" {
		b.WriteString("  " + cur)
	}
	return b.String()
}

// fitLine shortens a status line that ends in the current item to width:
// the item loses its start ("…/dir/file"), then the line is cut.
func fitLine(line, current string, width int) string {
	n := utf8.RuneCountInString(line)
	if n <= width {
		return line
	}
	if current != "" && strings.HasSuffix(line, current) {
		cur := []rune(current)
		if keep := len(cur) - (n - width) - 1; keep >= 8 {
			return strings.TrimSuffix(line, current) + "…" + string(cur[len(cur)-keep:])
		}
		line = strings.TrimRight(strings.TrimSuffix(line, current), " ")
	}
	return truncate(line, width)
}

// truncate shortens s to at most width characters, keeping the start (the
// counters) and cutting the current file name.
func truncate(s string, width int) string {
	if width <= 0 || utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width])
}

// formatBytes prints sizes like restic: "512 B", "1.500 KiB", "2.000 GiB".
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		if v < unit || u == "TiB" {
			return fmt.Sprintf("%.3f %s", v, u)
		}
	}
	return "" // unreachable
}

// formatDuration prints m:ss or h:mm:ss.
func formatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	h, m, sec := s/3600, (s/60)%60, s%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, sec)
	}
	return fmt.Sprintf("%d:%02d", m, sec)
}
