// Package catalog reads the Kubernetes backups a repository holds, with no
// cluster at hand: listing them by their tags, resolving a name, reading
// /backup.json, the backup log and the list of items, downloading the
// manifests as an archive, and deleting a backup.
package catalog

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"

	"golang.org/x/sync/errgroup"
)

// BackupEntry is a backup in the repository: a snapshot tagged
// backup=<name>.
type BackupEntry struct {
	Name     string
	Schedule string
	Expires  *time.Time // from the expires= tag
	Snapshot *snapshot.Snapshot
	// Info is /backup.json once LoadBackupInfos read it; InfoErr says why
	// it could not be.
	Info    *layout.BackupInfo
	InfoErr error
}

// NewBackupEntry describes sn from its tags; ok is false when sn is not a
// backup.
func NewBackupEntry(sn *snapshot.Snapshot) (e *BackupEntry, ok bool) {
	e = &BackupEntry{Snapshot: sn}
	for _, t := range sn.Tags {
		switch {
		case strings.HasPrefix(t, layout.TagBackup) && e.Name == "":
			e.Name = strings.TrimPrefix(t, layout.TagBackup)
		case strings.HasPrefix(t, layout.TagSchedule) && e.Schedule == "":
			e.Schedule = strings.TrimPrefix(t, layout.TagSchedule)
		}
	}
	// The latest expiry tag wins, as for forget --expired.
	if exp, ok := retention.ParseExpiry(sn.Tags); ok {
		e.Expires = &exp
	}
	return e, e.Name != ""
}

// ListBackups returns the repository's backups, oldest first. Unreadable
// snapshot files are reported through warn.
func ListBackups(ctx context.Context, r *repo.Repository, warn func(error)) ([]*BackupEntry, error) {
	sns, err := snapshot.ListSnapshots(ctx, r, snapshot.Filter{}, warn)
	if err != nil {
		return nil, err
	}
	var out []*BackupEntry
	for _, sn := range sns {
		if e, ok := NewBackupEntry(sn); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// FindBackupEntry finds the backup called name (the newest, should a
// name be on several snapshots) or, failing that, the backup snapshot
// whose ID starts with name.
func FindBackupEntry(ctx context.Context, r *repo.Repository, name string) (*BackupEntry, error) {
	if name == "" {
		return nil, errors.New("no backup name given")
	}
	sns, bad, err := snapshot.ListSnapshotsComplete(ctx, r, snapshot.Filter{Tags: []string{layout.TagBackup + name}})
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		// An unreadable file may hold a newer backup of this name: an older
		// one must not pass for it. A snapshot ID (no backup has that
		// name) is still unambiguous.
		if len(sns) == 0 {
			if sn, err := snapshot.FindSnapshot(ctx, r, name, snapshot.Filter{}); err == nil {
				if e, ok := NewBackupEntry(sn); ok {
					return e, nil
				}
			}
		}
		return nil, fmt.Errorf("cannot tell which backup is named %q: %w; name the backup's snapshot by ID instead, or run `cairn check` and remove the damaged snapshot with `cairn forget %s`",
			name, snapshot.UnreadableSummary(bad), bad[0].ID.Str())
	}
	if len(sns) > 0 {
		e, _ := NewBackupEntry(sns[len(sns)-1])
		return e, nil
	}
	sn, err := snapshot.FindSnapshot(ctx, r, name, snapshot.Filter{})
	if err != nil {
		return nil, fmt.Errorf("%w: no backup is named %q (`cairn cluster backups` lists them)", ErrBackupNotFound, name)
	}
	e, ok := NewBackupEntry(sn)
	if !ok {
		return nil, fmt.Errorf("%w: snapshot %s is not a cluster backup (it has no %sNAME tag)", ErrBackupNotFound, sn.ID.Str(), layout.TagBackup)
	}
	return e, nil
}

// ErrBackupNotFound is returned by FindBackupEntry.
var ErrBackupNotFound = errors.New("backup not found")

// LoadBackupInfos reads /backup.json of each entry (8 at a time). The
// repository's index must be loaded. An entry that cannot be read keeps its
// error in InfoErr and the others go on.
func LoadBackupInfos(ctx context.Context, r *repo.Repository, entries []*BackupEntry) {
	ReadEach(r, len(entries), func(i int, loader *snapshot.TreeLoader, cache *browse.BlobCache) {
		e := entries[i]
		e.Info, e.InfoErr = readBackupInfo(ctx, loader, cache, e.Snapshot)
	})
}

// ReadEach calls read for 0..n-1, 8 at a time, with one tree loader and
// blob cache for all: listings read a small file of many snapshots.
func ReadEach(r *repo.Repository, n int, read func(i int, loader *snapshot.TreeLoader, cache *browse.BlobCache)) {
	loader := snapshot.NewTreeLoader(r, 64)
	cache := browse.NewBlobCache(r, 16<<20)
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			read(i, loader, cache)
			return nil
		})
	}
	_ = g.Wait() // never fails: read keeps its errors
}

// ReadBackupInfo reads /backup.json of a backup snapshot. The
// repository's index must be loaded.
func ReadBackupInfo(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot) (*layout.BackupInfo, error) {
	return readBackupInfo(ctx, snapshot.NewTreeLoader(r, 8), browse.NewBlobCache(r, 4<<20), sn)
}

// maxBackupInfo bounds what is read of a backup.json: a damaged or hostile
// snapshot could name a file of any size there. Real ones are kilobytes,
// a few megabytes for thousands of volumes and warnings.
const maxBackupInfo = 64 << 20

// errTooLarge: a file read into memory is larger than its bound.
var errTooLarge = errors.New("file too large")

// boundedBuffer is a bytes.Buffer that refuses to grow past max.
type boundedBuffer struct {
	bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, fmt.Errorf("%w: over %d MiB", errTooLarge, b.max>>20)
	}
	return b.Buffer.Write(p)
}

func readBackupInfo(ctx context.Context, loader *snapshot.TreeLoader, cache *browse.BlobCache, sn *snapshot.Snapshot) (*layout.BackupInfo, error) {
	buf := boundedBuffer{max: maxBackupInfo}
	if err := dumpBackupFile(ctx, loader, cache, sn, "/"+layout.BackupInfoFile, &buf); err != nil {
		return nil, err
	}
	info := &layout.BackupInfo{}
	if err := json.Unmarshal(buf.Bytes(), info); err != nil {
		return nil, fmt.Errorf("backup %s: decode %s: %w", sn.ID.Str(), layout.BackupInfoFile, err)
	}
	return info, nil
}

// WriteBackupLog copies /logs/backup.log of a backup snapshot to w.
func WriteBackupLog(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, w io.Writer) error {
	return dumpBackupFile(ctx, snapshot.NewTreeLoader(r, 8), browse.NewBlobCache(r, 0), sn, path.Join("/", layout.LogsDir, layout.BackupLogFile), w)
}

func dumpBackupFile(ctx context.Context, loader *snapshot.TreeLoader, cache *browse.BlobCache, sn *snapshot.Snapshot, p string, w io.Writer) error {
	n, err := snapshot.FindNode(ctx, loader, *sn.Tree, p)
	if errors.Is(err, snapshot.ErrPathNotFound) {
		return fmt.Errorf("snapshot %s has no %s: it is not a complete cluster backup", sn.ID.Str(), p)
	}
	if err != nil {
		return err
	}
	if err := browse.DumpFile(ctx, loader.Repository(), cache, n, w); err != nil {
		return fmt.Errorf("backup %s: read %s: %w", sn.ID.Str(), p, err)
	}
	return nil
}

// BackupItem is one object in a backup.
type BackupItem struct {
	Resource  string `json:"resource"`            // "<resource>.<group>"
	Namespace string `json:"namespace,omitempty"` // "" = cluster-scoped
	Name      string `json:"name"`
	Size      uint64 `json:"size"`
}

// ListBackupItems lists the manifests of a backup snapshot, in tree order
// (cluster-scoped first, then by namespace, resource and name).
func ListBackupItems(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot) ([]BackupItem, error) {
	loader := snapshot.NewTreeLoader(r, 64)
	res, err := snapshot.FindNode(ctx, loader, *sn.Tree, "/"+layout.ResourcesDir)
	if errors.Is(err, snapshot.ErrPathNotFound) {
		return nil, fmt.Errorf("snapshot %s is not a cluster backup: it has no /%s", sn.ID.Str(), layout.ResourcesDir)
	}
	if err != nil {
		return nil, err
	}
	if res.Subtree == nil {
		return nil, fmt.Errorf("snapshot %s: /%s is not a directory", sn.ID.Str(), layout.ResourcesDir)
	}
	var items []BackupItem
	err = snapshot.Walk(ctx, loader, *res.Subtree, func(p string, n *snapshot.Node) error {
		if n.Type != snapshot.NodeFile {
			return nil
		}
		if it, ok := parseItemPath(p); ok {
			it.Size = n.Size
			items = append(items, it)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list items of backup %s: %w", sn.ID.Str(), err)
	}
	return items, nil
}

// parseItemPath reads "/cluster/<dir>/<name>.yaml" or
// "/namespaces/<ns>/<dir>/<name>.yaml" (relative to /resources).
func parseItemPath(p string) (BackupItem, bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	var it BackupItem
	switch {
	case len(parts) == 3 && parts[0] == "cluster":
	case len(parts) == 4 && parts[0] == "namespaces":
		it.Namespace = parts[1]
	default:
		return it, false
	}
	name, ok := strings.CutSuffix(parts[len(parts)-1], ".yaml")
	if !ok || name == "" {
		return it, false
	}
	it.Resource, it.Name = parts[len(parts)-2], name
	return it, true
}

// WriteResourcesArchive writes the /resources tree of a backup as a
// gzip-compressed tar archive (entries "resources/…"). As browse.Dump,
// it never writes an entry name that leads out of the directory the
// archive is extracted in: damaged trees and unusable names go to damaged
// (nil: they end the download with an error).
func WriteResourcesArchive(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, w io.Writer, damaged snapshot.DamagedFunc) error {
	gz := gzip.NewWriter(w)
	loader := snapshot.NewTreeLoader(r, 64)
	if err := browse.Dump(ctx, loader, browse.NewBlobCache(r, 0), *sn.Tree, "/"+layout.ResourcesDir, browse.ArchiveTar, gz, damaged); err != nil {
		if errors.Is(err, snapshot.ErrPathNotFound) {
			return fmt.Errorf("snapshot %s is not a cluster backup: it has no /%s", sn.ID.Str(), layout.ResourcesDir)
		}
		return err
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}

// DeleteBackup removes the backup's snapshot file; its data stays in the
// repository until a prune removes what no snapshot uses. Take an
// exclusive lock first.
func DeleteBackup(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot) error {
	if r.ReadOnly() {
		return fmt.Errorf("delete backup: %w", repo.ErrReadOnly)
	}
	h := repo.Handle{Type: repo.SnapshotFile, Name: sn.ID.String()}
	if err := r.Backend().Remove(ctx, h); err != nil {
		return fmt.Errorf("delete snapshot %s: %w", sn.ID.Str(), err)
	}
	return nil
}

// ResolveBackup resolves a backup name (the tag backup=<name>; the newest
// snapshot wins) or a snapshot ID prefix.
func ResolveBackup(ctx context.Context, r *repo.Repository, spec string) (*snapshot.Snapshot, error) {
	if spec == "" {
		return nil, errors.New("no backup given: name a backup or a snapshot ID")
	}
	sns, err := snapshot.ListSnapshots(ctx, r, snapshot.Filter{Tags: []string{layout.TagBackup + spec}}, nil)
	if err != nil {
		return nil, err
	}
	if len(sns) > 0 {
		return sns[len(sns)-1], nil
	}
	sn, err := snapshot.FindSnapshot(ctx, r, spec, snapshot.Filter{})
	if err != nil {
		return nil, fmt.Errorf("no backup named %q and no snapshot with that ID (`cairn snapshots --tag backup=NAME` lists backups): %w", spec, err)
	}
	return sn, nil
}

// BackupName is the backup's name: from its tag, else from backup.json,
// else the snapshot's short ID.
func BackupName(sn *snapshot.Snapshot, info *layout.BackupInfo) string {
	for _, t := range sn.Tags {
		if name, ok := strings.CutPrefix(t, layout.TagBackup); ok && name != "" {
			return name
		}
	}
	if info != nil && info.Name != "" {
		return info.Name
	}
	return sn.ID.Str()
}
