package maintenance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/cairn-backup/cairn/snapshot/browse"
)

// Record is /maintenance.json: what one run did.
type Record struct {
	Name         string    `json:"name"`
	Cluster      string    `json:"cluster"`
	CairnVersion string    `json:"cairn_version,omitempty"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	// Schedules are the policies applied; Forgotten what was forgotten.
	Schedules []ScheduleResult `json:"schedules,omitempty"`
	Forgotten []Forget         `json:"forgotten"`
	Prune     *PruneSummary    `json:"prune,omitempty"`
	Warnings  []string         `json:"warnings,omitempty"`
	// Error says why the run stopped before its end ("" = it ran to the
	// end).
	Error string `json:"error,omitempty"`
}

// PruneSummary is what the prune of a run did.
type PruneSummary struct {
	SizeBefore   int64 `json:"size_before"` // pack bytes before
	SizeAfter    int64 `json:"size_after"`  // pack bytes after
	Freed        int64 `json:"freed"`       // SizeBefore - SizeAfter
	PacksRemoved int   `json:"packs_removed"`
	PacksWritten int   `json:"packs_written"` // by repacking
	UnusedAfter  int64 `json:"unused_after"`  // unused bytes left in kept packs
	Skipped      bool  `json:"skipped,omitempty"`
}

// maxRecordSize bounds what is read of /maintenance.json.
const maxRecordSize = 64 << 20

// Log is the text of /maintenance.log.
func Log(rec *Record) string {
	var b strings.Builder
	line := func(at time.Time, format string, args ...any) {
		b.WriteString(at.UTC().Format("2006-01-02T15:04:05.000Z") + " ")
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	version := ""
	if rec.CairnVersion != "" {
		version = " by cairn " + rec.CairnVersion
	}
	line(rec.Start, "maintenance %s of cluster %s started%s", rec.Name, rec.Cluster, version)
	for _, s := range rec.Schedules {
		line(rec.Start, "schedule %s: %s: %d backups, %d kept, %d forgotten%s", s.Schedule, s.Policy, s.Backups, s.Kept, s.Forgotten, protectedNote(s))
	}
	for _, f := range rec.Forgotten {
		line(rec.End, "forgot %s", f.Describe())
	}
	for _, w := range rec.Warnings {
		line(rec.End, "warning: %s", w)
	}
	if p := rec.Prune; p != nil {
		if p.Skipped {
			line(rec.End, "prune: skipped (nothing was forgotten)")
		} else {
			line(rec.End, "prune: removed %d packs, wrote %d; %d bytes before, %d after: %d freed", p.PacksRemoved, p.PacksWritten, p.SizeBefore, p.SizeAfter, p.Freed)
		}
	}
	if rec.Error != "" {
		line(rec.End, "error: maintenance stopped: %s", rec.Error)
	}
	line(rec.End, "maintenance %s ended in %s: %d snapshots forgotten", rec.Name, rec.End.Sub(rec.Start).Round(time.Millisecond), len(rec.Forgotten))
	return b.String()
}

func protectedNote(s ScheduleResult) string {
	if s.Protected == "" {
		return ""
	}
	return "; kept " + s.Protected + ", its newest completed backup"
}

// Describe says what was forgotten and why, in one line.
func (f Forget) Describe() string {
	what := f.Kind + " snapshot " + short(f.ID)
	switch f.Kind {
	case KindBackup:
		what = "backup " + f.Backup + " (snapshot " + short(f.ID) + ")"
	case KindVolume:
		what = "volume snapshot " + short(f.ID) + " of backup " + f.Backup
	}
	why := f.Reason
	if f.Detail != "" {
		why += ": " + f.Detail
	}
	return what + ", " + why
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// Tags are the tags of rec's record.
func Tags(rec *Record) []string {
	return []string{layout.TagMaintenanceRecord, layout.TagMaintenance + rec.Name}
}

// Save writes rec as a maintenance record. The repository's index must
// be loaded and a lock held.
func Save(ctx context.Context, r *repo.Repository, rec *Record) (*snapshot.Snapshot, error) {
	if rec == nil || rec.Name == "" {
		return nil, errors.New("save maintenance record: no record")
	}
	js, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("save maintenance record: %w", err)
	}
	a := archiver.NewArchiver(r, archiver.ArchiveOptions{
		Tags: Tags(rec), Hostname: rec.Cluster, Time: rec.Start, ProgramVersion: "cairn " + rec.CairnVersion,
	})
	sn, err := catalog.SaveRecord(ctx, a, []catalog.RecordFile{{Name: layout.MaintenanceInfoFile, Data: append(js, '\n')},
		{Name: layout.MaintenanceLogFile, Data: []byte(Log(rec))}}, rec.End, layout.MaintenanceRecordPath(rec.Cluster))
	if err != nil {
		return nil, fmt.Errorf("save maintenance record: %w", err)
	}
	return sn, nil
}

// Entry is a maintenance record in the repository.
type Entry struct {
	Name     string
	Snapshot *snapshot.Snapshot
	Record   *Record // once Load read it
	Err      error   // why it could not be
}

// List returns the repository's maintenance records, oldest first.
// Unreadable snapshot files are reported through warn.
func List(ctx context.Context, r *repo.Repository, warn func(error)) ([]*Entry, error) {
	sns, err := snapshot.ListSnapshots(ctx, r, snapshot.Filter{Tags: []string{layout.TagMaintenanceRecord}}, warn)
	if err != nil {
		return nil, err
	}
	var out []*Entry
	for _, sn := range sns {
		e := &Entry{Snapshot: sn}
		for _, t := range sn.Tags {
			if v, ok := strings.CutPrefix(t, layout.TagMaintenance); ok && e.Name == "" {
				e.Name = v
			}
		}
		if e.Name != "" {
			out = append(out, e)
		}
	}
	return out, nil
}

// Load reads /maintenance.json of each entry. The repository's index must
// be loaded; an entry that cannot be read keeps its error in Err.
func Load(ctx context.Context, r *repo.Repository, entries []*Entry) {
	catalog.ReadEach(r, len(entries), func(i int, loader *snapshot.TreeLoader, cache *browse.BlobCache) {
		e := entries[i]
		var buf bytes.Buffer
		if e.Err = catalog.ReadRecordFile(ctx, loader, cache, e.Snapshot, "maintenance record", layout.MaintenanceInfoFile, maxRecordSize, &buf); e.Err == nil {
			e.Record, e.Err = Parse(buf.Bytes())
		}
	})
}

// Parse decodes /maintenance.json.
func Parse(data []byte) (*Record, error) {
	rec := &Record{}
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, fmt.Errorf("decode %s: %w", layout.MaintenanceInfoFile, err)
	}
	if rec.Name == "" {
		return nil, fmt.Errorf("decode %s: the record names no run", layout.MaintenanceInfoFile)
	}
	return rec, nil
}

// LogOf reads /maintenance.log of a record.
func LogOf(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot) (string, error) {
	var buf bytes.Buffer
	err := catalog.ReadRecordFile(ctx, snapshot.NewTreeLoader(r, 8), browse.NewBlobCache(r, 0), sn, "maintenance record", layout.MaintenanceLogFile, maxRecordSize, &buf)
	return buf.String(), err
}
