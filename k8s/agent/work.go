package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/k8s/metrics"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/snapshot"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
)

// errLost is the cause when another agent took an item over (this one's
// heartbeat was taken for stale) or the item was deleted: the work is
// abandoned, nothing reported.
var errLost = errors.New("the item was taken over by another agent, or deleted")

// owned keeps an item's status in step with this agent's work: one status
// write at a time, each on the latest version, and only while the item is
// still this agent's.
type owned struct {
	ag    *Agent
	items dynamic.ResourceInterface
	name  string
	mu    sync.Mutex
}

// update applies fn to the item's latest status and writes it; a conflict
// (the heartbeat and another writer) is retried on the new version.
func (o *owned) update(ctx context.Context, fn func(st *volapi.VolumeBackupStatus)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for range 5 {
		u, err := o.items.Get(ctx, o.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return errLost // deleted: its backup no longer waits for it
		}
		if err != nil {
			return err
		}
		vb, err := volapi.VolumeBackupFrom(u)
		if err != nil {
			return err
		}
		if vb.Status.Agent != o.ag.cfg.ID || vb.Status.Phase != volapi.PhaseInProgress {
			return errLost
		}
		st := vb.Status
		fn(&st)
		err = o.ag.writeStatus(ctx, o.items, vb, st)
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return errors.New("the item keeps changing under the agent")
}

// heartbeat renews an item every cfg.Heartbeat through beat until wctx
// ends; when beat finds the item taken by another agent (errLost) it
// cancels wctx with that cause. The returned channel closes when it stops.
func (ag *Agent) heartbeat(wctx context.Context, cancel context.CancelCauseFunc, k string, beat func(context.Context) error) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(ag.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			switch err := beat(wctx); {
			case errors.Is(err, errLost):
				cancel(errLost)
				return
			case err != nil && wctx.Err() == nil:
				ag.cfg.Logf("%s: heartbeat: %v", k, err)
			}
		}
	}()
	return done
}

// work copies a claimed item, renewing its heartbeat, and reports.
func (ag *Agent) work(ctx context.Context, items dynamic.ResourceInterface, k string) {
	o := &owned{ag: ag, items: items, name: k[len(nsOf(k))+1:]}
	u, err := items.Get(ctx, o.name, metav1.GetOptions{})
	if err != nil {
		ag.cfg.Logf("%s: %v", k, err)
		return
	}
	vb, err := volapi.VolumeBackupFrom(u)
	if err != nil {
		ag.cfg.Logf("%s: %v", k, err)
		return
	}
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	prog := &snapshot.Progress{}
	beatDone := ag.heartbeat(wctx, cancel, k, func(ctx context.Context) error {
		return o.update(ctx, func(st *volapi.VolumeBackupStatus) {
			st.Heartbeat = &metav1.MicroTime{Time: time.Now()}
			st.Progress = progressOf(prog)
		})
	})
	start := time.Now()
	ag.cfg.Logf("%s: copying volume %q of pod %s/%s (attempt %d)", k, vb.Spec.Volume, vb.Spec.Pod.Namespace, vb.Spec.Pod.Name, vb.Status.Attempts)
	res, err := ag.copyVolume(wctx, vb, prog)
	cancel(nil)
	<-beatDone

	ag.report(ctx, wctx, k, "copying", err, itemEnd{
		release: func(fctx context.Context, msg string) error {
			return o.update(fctx, func(st *volapi.VolumeBackupStatus) {
				st.Agent, st.Heartbeat, st.Progress, st.Message = "", nil, nil, msg
			})
		},
		fail: func(fctx context.Context, msg string, now *metav1.Time) error {
			err := o.update(fctx, func(st *volapi.VolumeBackupStatus) {
				st.Phase, st.Message, st.CompletionTime, st.Progress = volapi.PhaseFailed, msg, now, nil
			})
			ag.cfg.Metrics.VolumeBackup(metrics.ResultFailed, 0, 0, time.Since(start))
			return err
		},
		complete: func(fctx context.Context, now *metav1.Time) error {
			err := o.update(fctx, func(st *volapi.VolumeBackupStatus) { res.fill(st, now) })
			ag.cfg.Metrics.VolumeBackup(metrics.ResultCompleted, res.bytesRead, res.bytesAdded, time.Since(start))
			ag.cfg.Logf("%s: completed: snapshot %s, %d files, %d bytes (%d read, %d added), %d errors, took %s",
				k, res.snapshot[:8], res.files, res.bytes, res.bytesRead, res.bytesAdded, res.errors, time.Since(start).Round(time.Millisecond))
			return err
		},
	})
}

// itemEnd writes the end of an item's work into its status, for report.
type itemEnd struct {
	release  func(ctx context.Context, msg string) error // no owner any more; msg says why
	fail     func(ctx context.Context, msg string, now *metav1.Time) error
	complete func(ctx context.Context, now *metav1.Time) error
}

// report writes how the work on item k ended (err from the work, wctx
// its context), both kinds of item alike. It is written even when ctx
// ended (SIGTERM): briefly, and never as done unless the work finished.
// A stopped agent releases the item, so that the next agent retries it
// now rather than after the heartbeat goes stale; an item another agent
// took over (errLost) is left to it.
func (ag *Agent) report(ctx, wctx context.Context, k, doing string, err error, end itemEnd) {
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer fcancel()
	now := &metav1.Time{Time: time.Now()}
	switch {
	case errors.Is(context.Cause(wctx), errLost):
		ag.cfg.Logf("%s: %v; abandoned", k, errLost)
		return
	case err != nil && ctx.Err() != nil:
		err = end.release(fctx, "the agent was stopped while "+doing+"; the next agent retries it")
		ag.cfg.Logf("%s: released (agent stopping)", k)
	case err != nil:
		msg := err.Error()
		err = end.fail(fctx, msg, now)
		ag.cfg.Logf("%s: failed: %s", k, msg)
	default:
		err = end.complete(fctx, now)
	}
	if err != nil {
		ag.cfg.Logf("%s: report status: %v", k, err)
	}
}

func progressOf(p *snapshot.Progress) *volapi.Progress {
	return &volapi.Progress{BytesDone: int64(p.Bytes.Load()), BytesTotal: int64(p.TotalBytes.Load())}
}

// result is what a finished copy reports.
type result struct {
	snapshot, parent, tree                      string
	files, bytes, bytesAdded, bytesRead, errors int64
	filesNew, filesChanged, filesUnmodified     int64
	message                                     string
}

func (r *result) fill(st *volapi.VolumeBackupStatus, now *metav1.Time) {
	st.Phase, st.CompletionTime, st.Progress = volapi.PhaseCompleted, now, nil
	st.SnapshotID, st.ParentSnapshotID, st.Tree = r.snapshot, r.parent, r.tree
	st.Files, st.Bytes, st.BytesAdded, st.BytesRead, st.Errors = r.files, r.bytes, r.bytesAdded, r.bytesRead, r.errors
	st.FilesNew, st.FilesChanged, st.FilesUnmodified = r.filesNew, r.filesChanged, r.filesUnmodified
	st.Message = r.message
}
