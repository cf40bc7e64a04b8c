package metrics

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriteText(t *testing.T) {
	tests := []struct {
		name string
		fill func(r *Registry)
		want string
	}{{
		name: "counter without labels, HELP escaped",
		fill: func(r *Registry) {
			r.Add(&Family{Name: "a_total", Kind: Counter, Help: "one \\ two\nthree"}).Add(2)
		},
		want: "# HELP a_total one \\\\ two\\nthree\n# TYPE a_total counter\na_total 2\n",
	}, {
		name: "label values escaped and series sorted",
		fill: func(r *Registry) {
			f := r.Add(&Family{Name: "g", Kind: Gauge, Help: "h", Labels: []string{"schedule", "x"}})
			f.Set(3, "z", "1")
			f.Set(1.5, `a"b\c`+"\nd", "")
		},
		want: "# HELP g h\n# TYPE g gauge\n" +
			`g{schedule="a\"b\\c\nd",x=""} 1.5` + "\n" +
			`g{schedule="z",x="1"} 3` + "\n",
	}, {
		name: "a family without series still has HELP and TYPE",
		fill: func(r *Registry) { r.Add(&Family{Name: "e", Kind: Gauge, Help: "h"}) },
		want: "# HELP e h\n# TYPE e gauge\n",
	}, {
		name: "special floats",
		fill: func(r *Registry) {
			f := r.Add(&Family{Name: "f", Kind: Gauge, Help: "h", Labels: []string{"k"}})
			f.Set(math.Inf(1), "a")
			f.Set(math.Inf(-1), "b")
			f.Set(math.NaN(), "c")
			f.Set(1e21, "d")
			f.Set(1700000000, "e")
		},
		want: "# HELP f h\n# TYPE f gauge\n" +
			"f{k=\"a\"} +Inf\nf{k=\"b\"} -Inf\nf{k=\"c\"} NaN\nf{k=\"d\"} 1e+21\nf{k=\"e\"} 1700000000\n",
	}, {
		name: "histogram buckets cumulative, le last, +Inf equals count",
		fill: func(r *Registry) {
			f := r.Add(&Family{Name: "d_seconds", Kind: Histogram, Help: "h", Labels: []string{"op"}, Buckets: []float64{1, 5, 10}})
			for _, v := range []float64{0.5, 1, 3, 7, 100} {
				f.Observe(v, "backup")
			}
		},
		want: "# HELP d_seconds h\n# TYPE d_seconds histogram\n" +
			`d_seconds_bucket{op="backup",le="1"} 2` + "\n" +
			`d_seconds_bucket{op="backup",le="5"} 3` + "\n" +
			`d_seconds_bucket{op="backup",le="10"} 4` + "\n" +
			`d_seconds_bucket{op="backup",le="+Inf"} 5` + "\n" +
			`d_seconds_sum{op="backup"} 111.5` + "\n" +
			`d_seconds_count{op="backup"} 5` + "\n",
	}, {
		name: "replace drops series that went away",
		fill: func(r *Registry) {
			f := r.Add(&Family{Name: "r", Kind: Gauge, Help: "h", Labels: []string{"s"}})
			f.Set(1, "old")
			f.Replace(func(set func(float64, ...string)) { set(2, "new") })
		},
		want: "# HELP r h\n# TYPE r gauge\nr{s=\"new\"} 2\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Registry
			tt.fill(&r)
			var b strings.Builder
			if err := r.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tt.want)
			}
		})
	}
}

func TestRegistryRefusesMistakes(t *testing.T) {
	for name, fn := range map[string]func(){
		"duplicate name": func() {
			var r Registry
			r.Add(&Family{Name: "x", Kind: Gauge})
			r.Add(&Family{Name: "x", Kind: Counter})
		},
		"wrong label count": func() {
			var r Registry
			r.Add(&Family{Name: "x", Kind: Gauge, Labels: []string{"a"}}).Set(1)
		},
		"unsorted buckets": func() {
			var r Registry
			r.Add(&Family{Name: "x", Kind: Histogram, Buckets: []float64{2, 1}})
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			fn()
		})
	}
}

func TestHandler(t *testing.T) {
	m := NewAgent()
	m.VolumeBackup(ResultCompleted, 100, 40, 2500e6)
	srv := httptest.NewServer(m.Registry.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != ContentType {
		t.Errorf("Content-Type %q", ct)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`cairn_volume_backups_total{result="completed"} 1`,
		`cairn_volume_backups_total{result="failed"} 0`,
		`cairn_volume_bytes_read_total{operation="backup"} 100`,
		`cairn_volume_bytes_written_total{operation="backup"} 40`,
		`cairn_volume_duration_seconds_bucket{operation="backup",result="completed",le="1"} 0`,
		`cairn_volume_duration_seconds_bucket{operation="backup",result="completed",le="5"} 1`,
		`cairn_volume_duration_seconds_sum{operation="backup",result="completed"} 2.5`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("missing %q in\n%s", want, body)
		}
	}
	var nilAgent *Agent
	nilAgent.VolumeBackup(ResultFailed, 0, 0, 0) // no-op, no panic
	nilAgent.VolumeRestore(ResultFailed, 0, 0)
}
