package restorelog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"
)

// ErrNotFound is returned by Find for a name no record has.
var ErrNotFound = errors.New("restore not found")

var errNoResult = errors.New("the record holds no restore result")

// maxRecordSize bounds what is read of /restore.json: a restore of a
// hundred thousand objects writes about 20 MiB.
const maxRecordSize = 256 << 20

// Entry is a restore record in the repository.
type Entry struct {
	Name     string // from the restore= tag
	Backup   string // from the restore-of= tag
	Snapshot *snapshot.Snapshot
	// Record is /restore.json once Load read it; Err says why it could
	// not be.
	Record *Record
	Err    error
}

// NewEntry describes sn from its tags; ok is false when sn is not a
// restore record.
func NewEntry(sn *snapshot.Snapshot) (e *Entry, ok bool) {
	if !sn.HasTag(layout.TagRestoreRecord) {
		return nil, false
	}
	e = &Entry{Snapshot: sn}
	for _, t := range sn.Tags {
		if v, ok := strings.CutPrefix(t, layout.TagRestore); ok && e.Name == "" {
			e.Name = v
		} else if v, ok := strings.CutPrefix(t, layout.TagRestoreOf); ok && e.Backup == "" {
			e.Backup = v
		}
	}
	return e, e.Name != ""
}

// List returns the repository's restore records, oldest first; backup,
// if not "", keeps those of that backup. Unreadable snapshot files are
// reported through warn.
func List(ctx context.Context, r *repo.Repository, backup string, warn func(error)) ([]*Entry, error) {
	f := snapshot.Filter{Tags: []string{layout.TagRestoreRecord}}
	if backup != "" {
		f.Tags = []string{layout.TagRestoreRecord + "," + layout.TagRestoreOf + backup}
	}
	sns, err := snapshot.ListSnapshots(ctx, r, f, warn)
	if err != nil {
		return nil, err
	}
	var out []*Entry
	for _, sn := range sns {
		if e, ok := NewEntry(sn); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// Find finds the record of the restore called name (the newest, should
// several share it; n says how many do) or, failing that, the record
// whose snapshot ID starts with name; "latest" is the newest record when
// no restore has that name. An unknown name wraps ErrNotFound.
func Find(ctx context.Context, r *repo.Repository, name string) (e *Entry, n int, err error) {
	if name == "" {
		return nil, 0, errors.New("no restore name given")
	}
	sns, bad, err := snapshot.ListSnapshotsComplete(ctx, r, snapshot.Filter{Tags: []string{layout.TagRestoreRecord + "," + layout.TagRestore + name}})
	if err != nil {
		return nil, 0, err
	}
	if len(sns) > 0 {
		if len(bad) > 0 {
			// An unreadable file may hold a newer record of this name.
			return nil, 0, fmt.Errorf("cannot tell which record of restore %q is the newest: %w; name the record's snapshot by ID instead, or run `cairn check` and remove the damaged snapshot with `cairn forget %s`",
				name, snapshot.UnreadableSummary(bad), bad[0].ID.Str())
		}
		e, _ := NewEntry(sns[len(sns)-1])
		return e, len(sns), nil
	}
	if name == "latest" {
		all, err := List(ctx, r, "", nil)
		if err != nil {
			return nil, 0, err
		}
		if len(all) == 0 {
			return nil, 0, fmt.Errorf("%w: the repository holds no restore records", ErrNotFound)
		}
		return all[len(all)-1], 1, nil
	}
	sn, ferr := snapshot.FindSnapshot(ctx, r, name, snapshot.Filter{})
	if ferr == nil {
		if e, ok := NewEntry(sn); ok {
			return e, 1, nil
		}
		return nil, 0, fmt.Errorf("%w: snapshot %s is not a restore record (it has no %s tag)", ErrNotFound, sn.ID.Str(), layout.TagRestoreRecord)
	}
	return nil, 0, fmt.Errorf("%w: no restore is named %q (`cairn cluster restores` lists them)", ErrNotFound, name)
}

// Taken reports whether a record of a restore called name exists. An
// unreadable snapshot file is an error: it may be that record.
func Taken(ctx context.Context, r *repo.Repository, name string) (bool, error) {
	sns, bad, err := snapshot.ListSnapshotsComplete(ctx, r, snapshot.Filter{Tags: []string{layout.TagRestoreRecord + "," + layout.TagRestore + name}})
	if err != nil {
		return false, err
	}
	if len(sns) == 0 && len(bad) > 0 {
		return false, fmt.Errorf("cannot tell whether restore name %q is taken: %w", name, snapshot.UnreadableSummary(bad))
	}
	return len(sns) > 0, nil
}

// Load reads /restore.json of each entry (8 at a time). The repository's
// index must be loaded. An entry that cannot be read keeps its error in
// Err and the others go on.
func Load(ctx context.Context, r *repo.Repository, entries []*Entry) {
	catalog.ReadEach(r, len(entries), func(i int, loader *snapshot.TreeLoader, cache *browse.BlobCache) {
		e := entries[i]
		e.Record, e.Err = readRecord(ctx, loader, cache, e.Snapshot)
	})
}

// ReadRecord reads /restore.json of a restore record. The repository's
// index must be loaded.
func ReadRecord(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot) (*Record, error) {
	return readRecord(ctx, snapshot.NewTreeLoader(r, 8), browse.NewBlobCache(r, 4<<20), sn)
}

func readRecord(ctx context.Context, loader *snapshot.TreeLoader, cache *browse.BlobCache, sn *snapshot.Snapshot) (*Record, error) {
	var buf bytes.Buffer
	if err := dumpFile(ctx, loader, cache, sn, layout.RestoreInfoFile, &buf); err != nil {
		return nil, err
	}
	rec, err := Parse(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("restore record %s: %w", sn.ID.Str(), err)
	}
	return rec, nil
}

// Parse decodes /restore.json.
func Parse(data []byte) (*Record, error) {
	rec := &Record{}
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, fmt.Errorf("decode %s: %w", layout.RestoreInfoFile, err)
	}
	if rec.RestoreResult == nil || rec.Name == "" {
		return nil, fmt.Errorf("decode %s: %w", layout.RestoreInfoFile, errNoResult)
	}
	return rec, nil
}

// WriteLog copies /restore.log of a restore record to w. The repository's
// index must be loaded.
func WriteLog(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, w io.Writer) error {
	return dumpFile(ctx, snapshot.NewTreeLoader(r, 8), browse.NewBlobCache(r, 0), sn, layout.RestoreLogFile, w)
}

func dumpFile(ctx context.Context, loader *snapshot.TreeLoader, cache *browse.BlobCache, sn *snapshot.Snapshot, name string, w io.Writer) error {
	return catalog.ReadRecordFile(ctx, loader, cache, sn, "restore record", name, maxRecordSize, w)
}
