package agent

import (
	"context"
	"errors"
	"time"

	"github.com/cairn-backup/cairn/k8s/metrics"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/snapshot"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
)

// processRestore is process for a VolumeRestore of this node.
func (ag *Agent) processRestore(ctx context.Context, k string) {
	ns, name := nsOf(k), k[len(nsOf(k))+1:]
	items := ag.cfg.Dyn.Resource(volapi.VolumeRestoreResource).Namespace(ns)
	u, err := items.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || ctx.Err() != nil {
		return
	}
	if err != nil {
		ag.cfg.Logf("%s: %v", k, err)
		ag.retryLater(keyRestore + k)
		return
	}
	vr, err := volapi.VolumeRestoreFrom(u)
	if err != nil {
		ag.cfg.Logf("%s: %v", k, err)
		return
	}
	if vr.Spec.Node != ag.cfg.Node {
		return
	}
	ag.claimAndRun(ctx, k, keyRestore+k, "restoring", vr.Status.Phase, vr.Status.Ownership,
		func(msg string, now time.Time) error {
			st := vr.Status
			st.Phase, st.Message, st.CompletionTime, st.Progress = volapi.PhaseFailed, msg, &metav1.Time{Time: now}, nil
			if err := ag.writeRestoreStatus(ctx, items, vr, st); err != nil {
				return err
			}
			ag.cfg.Metrics.VolumeRestore(metrics.ResultFailed, 0, since(vr.Status.StartTime, now))
			return nil
		},
		func(own volapi.Ownership, now time.Time) error {
			return ag.writeRestoreStatus(ctx, items, vr, volapi.VolumeRestoreStatus{
				Phase: volapi.PhaseInProgress, StartTime: &metav1.Time{Time: now}, Ownership: own})
		},
		func() { ag.workRestore(ctx, items, k, vr) })
}

func (ag *Agent) writeRestoreStatus(ctx context.Context, items dynamic.ResourceInterface, vr *volapi.VolumeRestore, st volapi.VolumeRestoreStatus) error {
	next := *vr
	next.Status = st
	u, err := next.ToUnstructured()
	if err != nil {
		return err
	}
	out, err := items.UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: "cairn-agent"})
	if err != nil {
		return err
	}
	vr.ResourceVersion = out.GetResourceVersion()
	vr.Status = st
	return nil
}

// ownedRestore is owned for a VolumeRestore.
type ownedRestore struct {
	owned
}

func (o *ownedRestore) update(ctx context.Context, fn func(st *volapi.VolumeRestoreStatus)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for range 5 {
		u, err := o.items.Get(ctx, o.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return errLost
		}
		if err != nil {
			return err
		}
		vr, err := volapi.VolumeRestoreFrom(u)
		if err != nil {
			return err
		}
		if vr.Status.Agent != o.ag.cfg.ID || vr.Status.Phase != volapi.PhaseInProgress {
			return errLost
		}
		st := vr.Status
		fn(&st)
		err = o.ag.writeRestoreStatus(ctx, o.items, vr, st)
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return errors.New("the item keeps changing under the agent")
}

// workRestore fills a claimed item's volume, renewing its heartbeat (and
// the message while it waits for the kubelet), and reports.
func (ag *Agent) workRestore(ctx context.Context, items dynamic.ResourceInterface, k string, vr *volapi.VolumeRestore) {
	o := &ownedRestore{owned{ag: ag, items: items, name: vr.Name}}
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	prog := &snapshot.Progress{}
	note := &noteBox{}
	beatDone := ag.heartbeat(wctx, cancel, k, func(ctx context.Context) error {
		return o.update(ctx, func(st *volapi.VolumeRestoreStatus) {
			st.Heartbeat = &metav1.MicroTime{Time: time.Now()}
			st.Progress = progressOf(prog)
			st.Message = note.get()
		})
	})
	start := time.Now()
	s := vr.Spec
	ag.cfg.Logf("%s: restoring volume %q of pod %s/%s from %s (attempt %d)", k, s.Volume, s.Pod.Namespace, s.Pod.Name, s.Source.Path, vr.Status.Attempts)
	res, err := ag.restoreVolume(wctx, vr, prog, note)
	cancel(nil)
	<-beatDone

	ag.report(ctx, wctx, k, "restoring", err, itemEnd{
		release: func(fctx context.Context, msg string) error {
			return o.update(fctx, func(st *volapi.VolumeRestoreStatus) {
				st.Agent, st.Heartbeat, st.Progress, st.Message = "", nil, nil, msg
			})
		},
		fail: func(fctx context.Context, msg string, now *metav1.Time) error {
			err := o.update(fctx, func(st *volapi.VolumeRestoreStatus) {
				st.Phase, st.Message, st.CompletionTime, st.Progress = volapi.PhaseFailed, msg, now, nil
			})
			ag.cfg.Metrics.VolumeRestore(metrics.ResultFailed, 0, time.Since(start))
			return err
		},
		complete: func(fctx context.Context, now *metav1.Time) error {
			err := o.update(fctx, func(st *volapi.VolumeRestoreStatus) {
				st.Phase, st.CompletionTime, st.Progress = volapi.PhaseCompleted, now, nil
				st.Files, st.Bytes, st.Errors, st.Message = res.files, res.bytes, res.errors, res.message
			})
			ag.cfg.Metrics.VolumeRestore(metrics.ResultCompleted, res.bytes, time.Since(start))
			ag.cfg.Logf("%s: completed: %d files, %d bytes, %d errors, into %s, took %s (flush to disk and marker %s)",
				k, res.files, res.bytes, res.errors, res.path, time.Since(start).Round(time.Millisecond), res.flush.Round(time.Millisecond))
			return err
		},
	})
}
