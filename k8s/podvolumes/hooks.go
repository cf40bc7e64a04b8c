package podvolumes

import (
	"context"

	"github.com/cairn-backup/cairn/k8s/backup"
	"github.com/cairn-backup/cairn/k8s/volumes"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// CopiesVolumes is backup.BackupOptions.CopiesVolumes for a selection:
// whether the rules pick a volume of the pod to copy (its claim not yet
// looked at). Such pods' hooks run here, around the copy.
func CopiesVolumes(sel volumes.Options) func(pod *unstructured.Unstructured) bool {
	return func(pod *unstructured.Unstructured) bool {
		plan, err := volumes.Select([]*unstructured.Unstructured{pod}, nil, sel)
		if err != nil {
			return false
		}
		if len(plan.Items) > 0 {
			return true
		}
		for _, s := range plan.Skipped {
			if s.Reason == volumes.ReasonClaimNotFound {
				return true // a claim: known only once the claims are listed
			}
		}
		return false
	}
}

// podHooks runs each pod's pre hook before the first VolumeBackup that
// copies its volumes is created and its post hook once all of them are
// done, as Velero runs them around a pod's file system backups.
type podHooks struct {
	h      *backup.PodHooks
	copies func(*unstructured.Unstructured) bool
	pods   map[string]*unstructured.Unstructured // "<ns>/<pod>"
	jobsOf map[string][]*job
	all    []*unstructured.Unstructured

	preDone  map[string]bool
	preErr   map[string]string
	postDone map[string]bool
}

func newPodHooks(in backup.VolumeInput, jobs []*job, o Options) *podHooks {
	ph := &podHooks{h: in.Hooks, copies: CopiesVolumes(o.Select), pods: map[string]*unstructured.Unstructured{},
		jobsOf: map[string][]*job{}, all: in.Pods,
		preDone: map[string]bool{}, preErr: map[string]string{}, postDone: map[string]bool{}}
	for _, p := range in.Pods {
		ph.pods[p.GetNamespace()+"/"+p.GetName()] = p
	}
	for _, j := range jobs {
		for _, k := range hookPods(j) {
			ph.jobsOf[k] = append(ph.jobsOf[k], j)
		}
	}
	return ph
}

// hookPods are the pods whose hooks bracket j's copy: its pod and, for a
// claim several pods mount, the others too (as Velero brackets the pods
// of one item block), so that every writer of the claim is quiesced.
func hookPods(j *job) []string {
	return append([]string{j.item.Namespace + "/" + j.item.Pod}, j.item.SharedWith...)
}

// runIdle runs the hooks of pods the rules pick (so no hook ran around
// their manifests) that have no volume to copy here after all.
func (ph *podHooks) runIdle(ctx context.Context) {
	if ph.h == nil {
		return
	}
	for _, p := range ph.all {
		k := p.GetNamespace() + "/" + p.GetName()
		if len(ph.jobsOf[k]) > 0 || !ph.h.Has(p) || !ph.copies(p) {
			continue
		}
		_ = ph.h.Pre(ctx, p)
		ph.h.Post(ctx, p)
	}
}

// pre runs the pre hooks of j's pods (hookPods) once each; false means
// one failed with on-error Fail and j must not be copied (j.err says why).
func (ph *podHooks) pre(ctx context.Context, j *job) bool {
	if ph.h == nil {
		return true
	}
	for _, k := range hookPods(j) {
		pod := ph.pods[k]
		if pod == nil {
			continue
		}
		if !ph.preDone[k] {
			ph.preDone[k] = true
			if err := ph.h.Pre(ctx, pod); err != nil {
				ph.preErr[k] = "not copied: " + err.Error()
			}
		}
		if e := ph.preErr[k]; e != "" {
			j.err = e
			return false
		}
	}
	return true
}

// done runs the post hook of each of j's pods once all its volumes are
// finished.
func (ph *podHooks) done(ctx context.Context, j *job) {
	if ph.h == nil {
		return
	}
next:
	for _, k := range hookPods(j) {
		if !ph.preDone[k] || ph.postDone[k] {
			continue
		}
		for _, o := range ph.jobsOf[k] {
			if !o.finished() {
				continue next
			}
		}
		ph.postDone[k] = true
		ph.h.Post(ctx, ph.pods[k])
	}
}

// postAll runs the post hooks not run yet: the wait ended (timeout,
// interrupt) or the items could not be created.
func (ph *podHooks) postAll(ctx context.Context) {
	if ph.h == nil {
		return
	}
	for _, p := range ph.all {
		k := p.GetNamespace() + "/" + p.GetName()
		if ph.preDone[k] && !ph.postDone[k] {
			ph.postDone[k] = true
			ph.h.Post(ctx, p)
		}
	}
}

// finished: done by its agent, or never to be (not created).
func (j *job) finished() bool {
	return j.err != "" || (j.vb != nil && j.vb.Status.Phase.Done())
}
