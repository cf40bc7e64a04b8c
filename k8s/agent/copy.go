package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/kubelet"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/k8s/volumes"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/cairn-backup/cairn/snapshot/match"
)

// copyVolume backs one volume's directory up into a snapshot of its own:
// its tree is the directory's content, tagged as volumes.SnapshotTags
// says, with the parent volumes.ChooseParent picks.
func (ag *Agent) copyVolume(ctx context.Context, vb *volapi.VolumeBackup, prog *snapshot.Progress) (*result, error) {
	r := ag.cfg.Repo
	spec := vb.Spec
	if spec.Repository.ID != r.Config().ID {
		return nil, fmt.Errorf("the item is for repository %.10s (%s), this agent writes to %.10s: run an agent for that repository",
			spec.Repository.ID, spec.Repository.Location, r.Config().ID)
	}
	vol, err := kubelet.Find(ag.cfg.KubeletRoot, spec.Pod.UID, spec.Volume, spec.PV)
	if err != nil {
		return nil, err
	}
	excl, err := excludes(vol.Path, spec.Uploader.Excludes)
	if err != nil {
		return nil, err
	}
	unlock, err := ag.lock(ctx, vb.Name)
	if err != nil {
		return nil, fmt.Errorf("lock repository: %w", err)
	}
	defer unlock()
	// What other agents and backups wrote since: their blobs need not be
	// stored again, and the parent's trees must be known to be read.
	if _, err := r.LoadNewIndexes(ctx); err != nil {
		return nil, fmt.Errorf("load new index files: %w", err)
	}
	sns, err := snapshot.ListSnapshots(ctx, r, snapshot.Filter{}, func(err error) { ag.cfg.Logf("%s: %v", vb.Name, err) })
	if err != nil {
		return nil, err
	}
	parent, how := volumes.ChooseParent(sns, spec.Parent)
	if parent != nil {
		ag.cfg.Logf("%s: parent snapshot %s (%s)", vb.Name, parent.ID.Str(), how)
	}

	go countTotals(ctx, vol.Path, prog)
	var firstErr string
	a := archiver.NewArchiver(r, archiver.ArchiveOptions{
		Parent:   parent,
		Tags:     volumes.SnapshotTags(spec.BackupName, spec.Pod, spec.Parent, spec.Tags),
		Hostname: ag.cfg.Node, ProgramVersion: "cairn " + ag.cfg.Version,
		Excludes: excl, ExcludePatterns: spec.Uploader.Excludes,
		Progress: prog, Workers: int(spec.Uploader.ParallelFiles),
		OnError: func(path string, err error) {
			ag.cfg.Logf("%s: %s: %v", vb.Name, path, err)
			if firstErr == "" {
				firstErr = fmt.Sprintf("%s: %v", strings.TrimPrefix(path, vol.Path), err)
			}
		},
	})
	var parentTree *snapshot.Node
	if parent != nil && parent.Tree != nil {
		parentTree = &snapshot.Node{Type: snapshot.NodeDir, Subtree: parent.Tree}
	}
	node, err := a.SavePath(ctx, vol.Path, parentTree)
	if err != nil {
		return nil, err
	}
	if node.Type != snapshot.NodeDir || node.Subtree == nil {
		return nil, fmt.Errorf("%s is not a directory", vol.Path)
	}
	sn, err := a.Finish(ctx, *node.Subtree, []string{vol.Path})
	if err != nil {
		return nil, err
	}
	s := sn.Summary
	res := &result{
		snapshot: sn.ID.String(), tree: node.Subtree.String(),
		files: int64(s.TotalFilesProcessed), bytes: int64(s.TotalBytesProcessed),
		bytesAdded: int64(s.DataAdded), bytesRead: int64(a.BytesRead()), errors: int64(a.ErrorCount()),
		filesNew: int64(s.FilesNew), filesChanged: int64(s.FilesChanged), filesUnmodified: int64(s.FilesUnmodified),
	}
	if parent != nil {
		res.parent = parent.ID.String()
	}
	if res.errors > 0 {
		res.message = fmt.Sprintf("%d files or directories could not be read (first: %s); the rest is saved", res.errors, firstErr)
	}
	return res, nil
}

// lock takes the shared lock for one copy. An exclusive lock (a prune)
// is waited out, with the item's heartbeat going on: the backup waiting
// for it bounds the wait with its --volume-timeout.
func (ag *Agent) lock(ctx context.Context, name string) (func(), error) {
	wait := 500 * time.Millisecond
	for logged := false; ; logged = true {
		unlock, err := ag.cfg.Lock(ctx)
		if !errors.Is(err, repo.ErrLocked) {
			return unlock, err
		}
		if !logged {
			ag.cfg.Logf("%s: waiting for the repository: %v", name, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// excludes compiles the item's patterns; one starting with "/" is
// anchored at the volume's root, as a user of the volume sees it.
func excludes(root string, pats []string) (*match.Matcher, error) {
	if len(pats) == 0 {
		return nil, nil
	}
	abs := make([]string, len(pats))
	for i, p := range pats {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if strings.HasPrefix(p, "/") {
			p = filepath.ToSlash(root) + p
		}
		if neg {
			p = "!" + p
		}
		abs[i] = p
	}
	m, err := match.NewMatcher(abs, false)
	if err != nil {
		return nil, fmt.Errorf("uploader excludes: %w", err)
	}
	return m, nil
}

// countTotals sums the sizes of the regular files below root, for the
// progress's total; the copy does not wait for it.
func countTotals(ctx context.Context, root string, prog *snapshot.Progress) {
	var files, bytes uint64
	_ = filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			files++
			bytes += uint64(fi.Size())
		}
		return nil
	})
	if ctx.Err() == nil {
		prog.TotalFiles.Store(files)
		prog.TotalBytes.Store(bytes)
		prog.ScanDone.Store(true)
	}
}
