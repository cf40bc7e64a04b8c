package podvolumes

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/tests/testutil"
)

// The agent as a process, started as install starts it (--metrics-address),
// serves /metrics: after a cluster backup its volume counters moved, and
// the repository refresh shows the backup as the last success of
// schedule="" (made by hand).
func TestAgentServesMetrics(t *testing.T) {
	e := newEnv(t, "metrics")
	uid := e.pod("app", "node-a", map[string]string{"backup.cairn.io/backup-volumes": "cache"}, emptyDirVol("cache"))
	testutil.GenTree(t, e.emptyDir(uid, "cache"), genOpts(7))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	a := e.agent("node-a", "--metrics-address", addr, "--metrics-refresh", "1s")
	b := e.backup("m1", 0)
	if b.Phase != "Completed" {
		t.Fatalf("phase %s", b.Phase)
	}
	var text string
	e.waitFor(time.Minute, "the metrics", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		text = string(raw)
		return strings.Contains(text, `cairn_backups{phase="Completed"} 1`+"\n")
	})
	for _, want := range []string{
		`cairn_volume_backups_total{result="completed"} 1`,
		`cairn_volume_backups_total{result="failed"} 0`,
		`cairn_volume_duration_seconds_count{operation="backup",result="completed"} 1`,
		`cairn_backup_last_success_timestamp_seconds{schedule=""} 1`,
		`cairn_repository_refresh_failures_total 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
	for _, bad := range []string{`cairn_volume_bytes_read_total{operation="backup"} 0` + "\n", "cairn_repository_size_bytes 0\n"} {
		if strings.Contains(text, bad) {
			t.Errorf("%q in\n%s", bad, text)
		}
	}
	if !strings.Contains(a.text(), "serving Prometheus metrics at http://"+addr+"/metrics") {
		t.Errorf("agent log:\n%s", a.text())
	}
}
