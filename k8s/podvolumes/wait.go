package podvolumes

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/cairn-backup/cairn/k8s/backup"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// progressEvery is how often the wait logs what is still running.
const progressEvery = 30 * time.Second

// wait lists the backup's items until all are done or o.Timeout passes;
// items not done by then are failed volumes. It returns an error only when
// ctx ends.
// done, if set, is called with each job as soon as it is done.
func wait(ctx context.Context, o Options, jobs []*job, in backup.VolumeInput, done func(context.Context, *job)) error {
	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	ri := o.Dyn.Resource(volapi.VolumeBackupResource).Namespace(o.Namespace)
	byName := map[string]*job{}
	for _, j := range jobs {
		byName[j.name] = j
	}
	seen := map[string]volapi.Phase{}
	lastLog := time.Now()
	for {
		l, err := ri.List(wctx, metav1.ListOptions{LabelSelector: volapi.LabelBackup + "=" + o.Backup})
		if err != nil && wctx.Err() == nil {
			in.Logf("list VolumeBackups: %v (retrying)", err)
		}
		if err == nil {
			for i := range l.Items {
				j := byName[l.Items[i].GetName()]
				if j == nil {
					continue
				}
				vb, err := volapi.VolumeBackupFrom(&l.Items[i])
				if err != nil {
					in.Logf("%v", err)
					continue
				}
				j.vb = vb
				if p := vb.Status.Phase; p != seen[j.name] {
					seen[j.name] = p
					logPhase(in, j)
				}
			}
		}
		finished := 0
		for _, j := range jobs {
			if j.finished() {
				finished++
				if done != nil {
					done(ctx, j)
				}
			}
		}
		if finished == len(jobs) {
			break
		}
		if time.Since(lastLog) >= progressEvery {
			lastLog = time.Now()
			in.Logf("waiting for %d of %d volumes: %s", len(jobs)-finished, len(jobs), pending(jobs))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wctx.Done():
		case <-time.After(o.Poll):
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		break // timed out
	}
	for _, j := range jobs {
		switch {
		case j.err != "": // never created (its pre hook failed)
		case j.vb == nil:
			j.err = fmt.Sprintf("its VolumeBackup %s/%s could not be read, or was deleted", o.Namespace, j.name)
		case j.vb.Status.Phase == volapi.PhaseFailed:
			j.err = "the agent failed: " + j.vb.Status.Message
		case j.vb.Status.Phase == volapi.PhaseCompleted && j.vb.Status.Tree == "":
			j.err = "the agent reported no tree"
		case j.vb.Status.Phase == volapi.PhaseCompleted:
		case j.vb.Status.Phase == volapi.PhaseInProgress:
			j.err = fmt.Sprintf("not done within the volume timeout (%s); %s", o.Timeout, progressText(j.vb.Status.Progress))
		default:
			j.err = fmt.Sprintf("no agent took it within the volume timeout (%s): is `cairn cluster agent` running on node %s, for this repository?", o.Timeout, j.item.Node)
		}
	}
	return nil
}

func logPhase(in backup.VolumeInput, j *job) {
	st := j.vb.Status
	what := fmt.Sprintf("volume %s of pod %s/%s (node %s)", j.item.Volume, j.item.Namespace, j.item.Pod, j.item.Node)
	switch st.Phase {
	case volapi.PhaseInProgress:
		in.Logf("%s: copying (attempt %d)", what, st.Attempts)
	case volapi.PhaseCompleted:
		in.Logf("%s: done, %d files, %d bytes (%d read, %d added, %d unchanged files not read)",
			what, st.Files, st.Bytes, st.BytesRead, st.BytesAdded, st.FilesUnmodified)
	case volapi.PhaseFailed:
		in.Logf("%s: failed: %s", what, st.Message)
	}
}

func pending(jobs []*job) string {
	var s []string
	for _, j := range jobs {
		if j.finished() {
			continue
		}
		p := "New"
		if j.vb != nil && j.vb.Status.Phase != "" {
			p = string(j.vb.Status.Phase)
		}
		txt := fmt.Sprintf("%s/%s/%s %s", j.item.Namespace, j.item.Pod, j.item.Volume, p)
		if j.vb != nil && j.vb.Status.Progress != nil {
			txt += " (" + progressText(j.vb.Status.Progress) + ")"
		}
		s = append(s, txt)
	}
	return fmt.Sprint(s)
}

func progressText(p *volapi.Progress) string {
	if p == nil {
		return "no progress reported"
	}
	if p.BytesTotal > 0 {
		return fmt.Sprintf("%d of %d bytes", p.BytesDone, p.BytesTotal)
	}
	return fmt.Sprintf("%d bytes", p.BytesDone)
}

// stitch builds the /volumes tree from the completed jobs' trees:
// /volumes/<ns>/<pod>/<volume>. A tree the index does not know (the
// agent's index file is missing) fails its volume rather than the
// snapshot. It returns nil when no volume is complete.
func stitch(ctx context.Context, r *repo.Repository, a *archiver.Archiver, jobs []*job, when time.Time) (*repo.ID, error) {
	byNS := map[string]map[string][]*snapshot.Node{}
	for _, j := range jobs {
		if j.err != "" {
			continue
		}
		id, err := repo.ParseID(j.vb.Status.Tree)
		if err != nil {
			j.err = fmt.Sprintf("the agent reported a bad tree ID %q", j.vb.Status.Tree)
			continue
		}
		if !r.HasBlob(repo.TreeBlob, id) {
			j.err = fmt.Sprintf("the volume's tree %s is not in the repository's index; run the backup again", id.Str())
			continue
		}
		it := j.item
		if byNS[it.Namespace] == nil {
			byNS[it.Namespace] = map[string][]*snapshot.Node{}
		}
		byNS[it.Namespace][it.Pod] = append(byNS[it.Namespace][it.Pod], dirNode(it.Volume, id, when))
	}
	if len(byNS) == 0 {
		return nil, nil
	}
	root := &snapshot.Tree{}
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		nsTree := &snapshot.Tree{}
		for _, pod := range slices.Sorted(maps.Keys(byNS[ns])) {
			id, err := a.SaveTree(ctx, &snapshot.Tree{Nodes: byNS[ns][pod]})
			if err != nil {
				return nil, fmt.Errorf("save volumes tree of pod %s/%s: %w", ns, pod, err)
			}
			nsTree.Nodes = append(nsTree.Nodes, dirNode(pod, id, when))
		}
		id, err := a.SaveTree(ctx, nsTree)
		if err != nil {
			return nil, fmt.Errorf("save volumes tree of namespace %s: %w", ns, err)
		}
		root.Nodes = append(root.Nodes, dirNode(ns, id, when))
	}
	id, err := a.SaveTree(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("save volumes tree: %w", err)
	}
	return &id, nil
}

// dirNode is a directory made up to hold volumes. A volume's own root
// gets it too: the kubelet makes the root of the volume a restore fills,
// with the pod's fsGroup, so its metadata is not the backup's to carry.
func dirNode(name string, id repo.ID, when time.Time) *snapshot.Node {
	return &snapshot.Node{
		Name: name, Type: snapshot.NodeDir, Mode: os.ModeDir | 0o755,
		ModTime: when, AccessTime: when, ChangeTime: when, Subtree: &id,
	}
}
