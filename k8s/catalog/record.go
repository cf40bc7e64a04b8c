package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"
)

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
