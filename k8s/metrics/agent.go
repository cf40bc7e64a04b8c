package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Metric names the agent exports (README "Metrics"; the example alerts in
// deploy/examples/prometheus-alerts.yaml use them and a test checks so).
const (
	VolumeBackupsTotal      = "cairn_volume_backups_total"
	VolumeRestoresTotal     = "cairn_volume_restores_total"
	VolumeBytesReadTotal    = "cairn_volume_bytes_read_total"
	VolumeBytesWrittenTotal = "cairn_volume_bytes_written_total"
	VolumeDurationSeconds   = "cairn_volume_duration_seconds"
	Backups                 = "cairn_backups"
	BackupLastSuccess       = "cairn_backup_last_success_timestamp_seconds"
	RepositorySizeBytes     = "cairn_repository_size_bytes"
	RepositoryPackFiles     = "cairn_repository_pack_files"
	RefreshTimestamp        = "cairn_repository_refresh_timestamp_seconds"
	RefreshFailuresTotal    = "cairn_repository_refresh_failures_total"
)

// Results and operations, as label values.
const (
	ResultCompleted = "completed"
	ResultFailed    = "failed"
	OpBackup        = "backup"
	OpRestore       = "restore"
)

// DurationBuckets span a small volume's seconds to a large one's hours.
var DurationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800}

// Agent is the agent's registry and its families. A nil *Agent counts
// nothing, so the agent runs the same without --metrics-address.
type Agent struct {
	Registry Registry

	volumeBackups, volumeRestores *Family
	bytesRead, bytesWritten       *Family
	duration                      *Family
	backups, lastSuccess          *Family
	repoSize, repoPacks           *Family
	refreshed, refreshFailures    *Family
}

// NewAgent registers the agent's families.
func NewAgent() *Agent {
	m := &Agent{}
	r := &m.Registry
	m.volumeBackups = r.Add(&Family{Name: VolumeBackupsTotal, Kind: Counter, Labels: []string{"result"},
		Help: "Volume backups (VolumeBackup items) this agent finished, by result (completed, failed)."})
	m.volumeRestores = r.Add(&Family{Name: VolumeRestoresTotal, Kind: Counter, Labels: []string{"result"},
		Help: "Volume restores (VolumeRestore items) this agent finished, by result (completed, failed)."})
	m.bytesRead = r.Add(&Family{Name: VolumeBytesReadTotal, Kind: Counter, Labels: []string{"operation"},
		Help: "Bytes of file content read from volumes by completed volume backups (unchanged files of the parent are not read)."})
	m.bytesWritten = r.Add(&Family{Name: VolumeBytesWrittenTotal, Kind: Counter, Labels: []string{"operation"},
		Help: "Bytes written by completed items: operation=backup counts new data added to the repository, operation=restore file content written into volumes."})
	m.duration = r.Add(&Family{Name: VolumeDurationSeconds, Kind: Histogram, Labels: []string{"operation", "result"}, Buckets: DurationBuckets,
		Help: "How long finished volume backups and restores took, from claim to outcome."})
	m.backups = r.Add(&Family{Name: Backups, Kind: Gauge, Labels: []string{"phase"},
		Help: "Cluster backups in the repository by phase (Completed, PartiallyFailed, Failed; Unknown when backup.json cannot be read), as of the last refresh."})
	m.lastSuccess = r.Add(&Family{Name: BackupLastSuccess, Kind: Gauge, Labels: []string{"schedule"},
		Help: "Start time (unix seconds) of the newest Completed cluster backup per schedule tag (schedule=\"\" for backups made by hand), as of the last refresh."})
	m.repoSize = r.Add(&Family{Name: RepositorySizeBytes, Kind: Gauge,
		Help: "Sum of the repository's pack file sizes as of the last refresh; after maintenance prunes, the next refresh shows what is left."})
	m.repoPacks = r.Add(&Family{Name: RepositoryPackFiles, Kind: Gauge,
		Help: "Pack files in the repository as of the last refresh."})
	m.refreshed = r.Add(&Family{Name: RefreshTimestamp, Kind: Gauge,
		Help: "When (unix seconds) the repository gauges were last refreshed successfully."})
	m.refreshFailures = r.Add(&Family{Name: RefreshFailuresTotal, Kind: Counter,
		Help: "Repository refreshes that failed (the agent's log says why)."})
	for _, res := range []string{ResultCompleted, ResultFailed} {
		m.volumeBackups.Touch(res)
		m.volumeRestores.Touch(res)
	}
	m.bytesRead.Touch(OpBackup)
	m.bytesWritten.Touch(OpBackup)
	m.bytesWritten.Touch(OpRestore)
	m.refreshFailures.Touch()
	return m
}

// VolumeBackup counts one finished volume backup; read and added are
// bytes read from the volume and added to the repository (completed only).
func (m *Agent) VolumeBackup(result string, read, added int64, took time.Duration) {
	if m == nil {
		return
	}
	m.volumeBackups.Add(1, result)
	if result == ResultCompleted {
		m.bytesRead.Add(float64(read), OpBackup)
		m.bytesWritten.Add(float64(added), OpBackup)
	}
	m.duration.Observe(took.Seconds(), OpBackup, result)
}

// VolumeRestore counts one finished volume restore; written is the file
// content written into the volume (completed only).
func (m *Agent) VolumeRestore(result string, written int64, took time.Duration) {
	if m == nil {
		return
	}
	m.volumeRestores.Add(1, result)
	if result == ResultCompleted {
		m.bytesWritten.Add(float64(written), OpRestore)
	}
	m.duration.Observe(took.Seconds(), OpRestore, result)
}

// Serve serves /metrics on ln until ctx ends.
func (m *Agent) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Registry.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics on %s: %w", ln.Addr(), err)
	}
	return nil
}
