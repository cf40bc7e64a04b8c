package archiver

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

// SaveStream stores a stream as the file name ("db.sql", or a slash path
// such as "etcd/snapshot.db") of a snapshot tree of its own, as restic's
// `backup --stdin` does: the snapshot's path is "/"+name and nothing is
// read from the file system. It returns the root tree and the snapshot
// paths for Finish; the caller calls Finish only once it knows the stream
// is whole (a producing command that fails must leave no snapshot).
func (a *Archiver) SaveStream(ctx context.Context, name string, rd io.Reader) (repo.ID, []string, error) {
	clean := path.Clean("/" + name)
	if clean == "/" || strings.ContainsRune(name, 0) {
		return repo.ID{}, nil, fmt.Errorf("stream file name %q: give a file name such as db.sql", name)
	}
	now := a.start
	if !a.opts.Time.IsZero() {
		now = a.opts.Time
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	a.progress.SetCurrent(clean)
	content, size, err := a.SaveReader(ctx, &progressReader{rd: rd, p: a.progress})
	if err != nil {
		return repo.ID{}, nil, fmt.Errorf("save %s: %w", clean, err)
	}
	a.st.files.Add(1)
	a.st.filesNew.Add(1)
	a.st.bytes.Add(size)
	a.progress.Files.Add(1)
	parts := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	node := &snapshot.Node{
		Name: parts[len(parts)-1], Type: snapshot.NodeFile, Mode: 0o644,
		ModTime: now, AccessTime: now, ChangeTime: now,
		UID: uid, GID: gid, User: lookupUser(uid), Group: lookupGroup(gid),
		Size: size, Content: content,
	}
	// The directories above the file, innermost first.
	for i := len(parts) - 1; ; i-- {
		id, err := a.SaveTree(ctx, &snapshot.Tree{Nodes: []*snapshot.Node{node}})
		if err != nil {
			return repo.ID{}, nil, err
		}
		if i == 0 {
			return id, []string{clean}, nil
		}
		a.st.dirsNew.Add(1)
		node = &snapshot.Node{
			Name: parts[i-1], Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755,
			ModTime: now, AccessTime: now, ChangeTime: now,
			UID: uid, GID: gid, User: node.User, Group: node.Group, Subtree: &id,
		}
	}
}

// progressReader counts a stream's bytes into the progress as they are read.
type progressReader struct {
	rd io.Reader
	p  *snapshot.Progress
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.rd.Read(b)
	r.p.Bytes.Add(uint64(n))
	return n, err
}
