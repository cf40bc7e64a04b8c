package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/cairn-backup/cairn/snapshot/browse"
)

// RecordFile is one file at the root of a record snapshot.
type RecordFile struct {
	Name string
	Data []byte
}

// SaveRecord saves files as the root tree of a snapshot made by a (which
// carries the record's tags, host and time) with path, the files' times
// at mtime. The repository's index must be loaded and a lock held.
func SaveRecord(ctx context.Context, a *archiver.Archiver, files []RecordFile, mtime time.Time, path string) (*snapshot.Snapshot, error) {
	files = slices.Clone(files)
	// Sorted by name, as trees must be.
	slices.SortFunc(files, func(x, y RecordFile) int { return strings.Compare(x.Name, y.Name) })
	root := &snapshot.Tree{}
	for _, f := range files {
		content, size, err := a.SaveReader(ctx, bytes.NewReader(f.Data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		root.Nodes = append(root.Nodes, &snapshot.Node{
			Name: f.Name, Type: snapshot.NodeFile, Mode: 0o644, Size: size, Content: content,
			ModTime: mtime, AccessTime: mtime, ChangeTime: mtime,
		})
	}
	id, err := a.SaveTree(ctx, root)
	if err != nil {
		return nil, err
	}
	return a.Finish(ctx, id, []string{path})
}

// ReadRecordFile copies the file /name of a record snapshot (a restore or
// maintenance record: kind says which, for errors) to w. The tree is
// untrusted: a missing file, a directory or more than limit bytes (what
// the node says, or what its blobs hold) are errors.
func ReadRecordFile(ctx context.Context, loader *snapshot.TreeLoader, cache *browse.BlobCache, sn *snapshot.Snapshot, kind, name string, limit int64, w io.Writer) error {
	n, err := snapshot.FindNode(ctx, loader, *sn.Tree, "/"+name)
	if errors.Is(err, snapshot.ErrPathNotFound) {
		return fmt.Errorf("snapshot %s has no /%s: it is not a complete %s", sn.ID.Str(), name, kind)
	}
	if err != nil {
		return err
	}
	if n.Type != snapshot.NodeFile {
		return fmt.Errorf("%s %s: /%s is not a file", kind, sn.ID.Str(), name)
	}
	if n.Size > uint64(limit) {
		return fmt.Errorf("%s %s: /%s is %d bytes, more than a record holds (%d)", kind, sn.ID.Str(), name, n.Size, limit)
	}
	if err := browse.DumpFile(ctx, loader.Repository(), cache, n, &limitWriter{w: w, left: limit, limit: limit}); err != nil {
		return fmt.Errorf("%s %s: read /%s: %w", kind, sn.ID.Str(), name, err)
	}
	return nil
}

// limitWriter fails once more than left bytes were written: a node's
// size is what the tree says, its blobs may hold more.
type limitWriter struct {
	w           io.Writer
	left, limit int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, fmt.Errorf("more than %d bytes", l.limit)
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}
