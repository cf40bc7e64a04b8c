// Package metrics is what the node agent tells Prometheus: a small
// registry of counters, gauges and histograms written in the Prometheus
// text exposition format (version 0.0.4), the agent's own work counted as
// it happens, and the repository's backups read periodically (refresh.go)
// through k8s/catalog. It is hand-written rather than client_golang:
// that module reaches the build only through minio's and etcd's graphs at
// differing versions, and cairn needs a dozen series, not a client library.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Kind is a metric family's TYPE.
type Kind string

const (
	Counter   Kind = "counter"
	Gauge     Kind = "gauge"
	Histogram Kind = "histogram"
)

// Family is one metric name with its label names; its series are keyed by
// label values.
type Family struct {
	Name, Help string
	Kind       Kind
	Labels     []string
	Buckets    []float64 // upper bounds, ascending; histograms only

	mu     sync.Mutex
	series map[string]*series // key: label values joined by \xff
}

type series struct {
	values []string
	value  float64  // counter, gauge; histogram: sum
	counts []uint64 // histogram: per bucket, not cumulative
	count  uint64   // histogram: observations
}

// Registry holds families in the order they were added.
type Registry struct {
	mu       sync.Mutex
	families []*Family
}

// Add registers f; a second family of the same name is a programming error.
func (r *Registry) Add(f *Family) *Family {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range r.families {
		if g.Name == f.Name {
			panic("metrics: duplicate family " + f.Name)
		}
	}
	if f.Kind == Histogram && !slices.IsSorted(f.Buckets) {
		panic("metrics: unsorted buckets for " + f.Name)
	}
	f.series = map[string]*series{}
	r.families = append(r.families, f)
	return f
}

// Names returns the names the registry exports, histograms with their
// _bucket, _sum and _count series.
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, f := range r.families {
		out = append(out, f.Name)
		if f.Kind == Histogram {
			out = append(out, f.Name+"_bucket", f.Name+"_sum", f.Name+"_count")
		}
	}
	return out
}

func (f *Family) get(values []string) *series {
	if len(values) != len(f.Labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values, got %d", f.Name, len(f.Labels), len(values)))
	}
	k := strings.Join(values, "\xff")
	s := f.series[k]
	if s == nil {
		s = &series{values: slices.Clone(values)}
		if f.Kind == Histogram {
			s.counts = make([]uint64, len(f.Buckets))
		}
		f.series[k] = s
	}
	return s
}

// Add adds v (≥ 0 for counters) to the series of the label values.
func (f *Family) Add(v float64, values ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.get(values).value += v
}

// Set sets a gauge's series.
func (f *Family) Set(v float64, values ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.get(values).value = v
}

// Observe records one observation in a histogram's series.
func (f *Family) Observe(v float64, values ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.get(values)
	s.value += v
	s.count++
	if i, _ := slices.BinarySearch(f.Buckets, v); i < len(f.Buckets) {
		s.counts[i]++ // v ≤ Buckets[i]
	}
}

// Replace drops every series of a gauge and sets the given ones at once,
// so that a scrape never sees half a refresh and series for things that
// went away (a deleted schedule) disappear.
func (f *Family) Replace(set func(set func(v float64, values ...string))) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.series = map[string]*series{}
	set(func(v float64, values ...string) { f.get(values).value = v })
}

// Touch creates the series of the label values at zero, so that a
// counter is exported (and rate() works) before its first event.
func (f *Family) Touch(values ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.get(values)
}

// WriteText writes every family in the text exposition format: HELP and
// TYPE lines, then the series sorted by label values.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	fams := slices.Clone(r.families)
	r.mu.Unlock()
	var b strings.Builder
	for _, f := range fams {
		f.write(&b)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (f *Family) write(b *strings.Builder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", f.Name, escapeHelp(f.Help), f.Name, f.Kind)
	keys := make([]string, 0, len(f.series))
	for k := range f.series {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s := f.series[k]
		if f.Kind != Histogram {
			line(b, f.Name, f.Labels, s.values, "", "", s.value)
			continue
		}
		var cum uint64
		for i, le := range f.Buckets {
			cum += s.counts[i]
			line(b, f.Name+"_bucket", f.Labels, s.values, "le", formatFloat(le), float64(cum))
		}
		line(b, f.Name+"_bucket", f.Labels, s.values, "le", "+Inf", float64(s.count))
		line(b, f.Name+"_sum", f.Labels, s.values, "", "", s.value)
		line(b, f.Name+"_count", f.Labels, s.values, "", "", float64(s.count))
	}
}

func line(b *strings.Builder, name string, labels, values []string, extra, extraValue string, v float64) {
	b.WriteString(name)
	if len(labels) > 0 || extra != "" {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(b, "%s=\"%s\"", l, escapeLabel(values[i]))
		}
		if extra != "" {
			if len(labels) > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(b, "%s=\"%s\"", extra, escapeLabel(extraValue))
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
}

// The format escapes \ and newline in HELP text, and \, " and newline in
// label values.
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		// Counts, bytes and unix times read better in full.
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// ContentType is the text format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves r at any path it is mounted on.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			http.Error(w, "only GET", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		_ = r.WriteText(w)
	})
}
