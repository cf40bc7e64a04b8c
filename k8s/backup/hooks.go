package backup

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/k8s/hooks"
	"github.com/cairn-backup/cairn/k8s/layout"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// PodHooks runs the pods' backup hooks (k8s/hooks) and records each in
// the backup log and backup.json. A pod's hooks run once per backup: the
// volume hook runs them around the copy of the pod's volumes (pre before
// its VolumeBackups are created, post when they are done); the pods whose
// volumes it does not copy (BackupOptions.CopiesVolumes) get theirs
// around their manifest, as Velero runs them around the pod item.
type PodHooks struct {
	r                   hooks.Runner
	logf, warnf, errorf func(format string, args ...any)

	mu      sync.Mutex
	results []layout.HookResult
	preFail map[string]bool // pods whose Fail pre hook failed: no post hook
}

// NewPodHooks runs hooks with r and writes what they did with the
// functions (the backup log's info, warning and error lines).
func NewPodHooks(r hooks.Runner, logf, warnf, errorf func(format string, args ...any)) *PodHooks {
	return &PodHooks{r: r, logf: logf, warnf: warnf, errorf: errorf, preFail: map[string]bool{}}
}

// Results are the hooks run so far, by namespace, pod and phase (pre
// first).
func (h *PodHooks) Results() []layout.HookResult { return h.sorted() }

func podKey(u *unstructured.Unstructured) string { return u.GetNamespace() + "/" + u.GetName() }

// Has reports whether the pod has a pre or post backup hook.
func (h *PodHooks) Has(pod *unstructured.Unstructured) bool {
	if h == nil {
		return false
	}
	a := pod.GetAnnotations()
	pre, _ := hooks.BackupHooks(a, hooks.Pre)
	post, _ := hooks.BackupHooks(a, hooks.Post)
	return pre != nil || post != nil
}

// Pre runs the pod's pre hook, if any. It returns an error (wrapping
// hooks.ErrHookFailed) when the hook failed and its on-error is Fail: the
// pod's volumes must then not be copied, and Post does nothing for it.
func (h *PodHooks) Pre(ctx context.Context, pod *unstructured.Unstructured) error {
	if h == nil {
		return nil
	}
	err := h.run(ctx, pod, hooks.Pre)
	if err != nil {
		h.mu.Lock()
		h.preFail[podKey(pod)] = true
		h.mu.Unlock()
	}
	return err
}

// Post runs the pod's post hook, if any, unless its pre hook failed with
// on-error Fail (Velero runs no post hook then either). It runs even when
// ctx has ended, bounded by the hook's timeout: a pre hook may have frozen
// a file system that only the post hook thaws.
func (h *PodHooks) Post(ctx context.Context, pod *unstructured.Unstructured) {
	if h == nil {
		return
	}
	h.mu.Lock()
	failed := h.preFail[podKey(pod)]
	h.mu.Unlock()
	if failed {
		if post, _ := hooks.BackupHooks(pod.GetAnnotations(), hooks.Post); post != nil {
			h.warnf("post hook of pod %s not run: its pre hook failed", podKey(pod))
		}
		return
	}
	_ = h.run(context.WithoutCancel(ctx), pod, hooks.Post)
}

func (h *PodHooks) run(ctx context.Context, u *unstructured.Unstructured, phase string) error {
	e, warnings := hooks.BackupHooks(u.GetAnnotations(), phase)
	for _, w := range warnings {
		h.warnf("pod %s: %s", podKey(u), w)
	}
	if e == nil {
		return nil
	}
	pod, err := hooks.PodFrom(u)
	if err != nil {
		h.errorf("%s hook: %v", phase, err)
		return nil
	}
	res, err := hooks.Run(ctx, h.r, pod, e, phase)
	line := hooks.Describe(res)
	switch {
	case err != nil:
		h.errorf("%s", line)
	case res.Result == layout.HookFailed:
		h.warnf("%s", line)
	default:
		h.logf("%s", line)
	}
	h.mu.Lock()
	h.results = append(h.results, res)
	h.mu.Unlock()
	return err
}

// sorted returns the results by namespace, pod and phase (pre first).
func (h *PodHooks) sorted() []layout.HookResult {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out := slices.Clone(h.results)
	slices.SortStableFunc(out, func(a, b layout.HookResult) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		if c := strings.Compare(a.Pod, b.Pod); c != 0 {
			return c
		}
		return strings.Compare(b.Phase, a.Phase) // "pre" > "post"
	})
	return out
}

// aroundManifest runs a pod's hooks around the save of its manifest when
// the volume hook does not take them.
func (b *backupRun) aroundManifest(ctx context.Context, obj *unstructured.Unstructured, save func() error) error {
	h := b.hooks
	if h == nil || !h.Has(obj) || (b.opts.CopiesVolumes != nil && b.opts.Volumes != nil && b.opts.CopiesVolumes(obj)) {
		return save()
	}
	start := time.Now()
	preErr := h.Pre(ctx, obj)
	err := save()
	h.Post(ctx, obj)
	if preErr == nil {
		b.log.logf("pod %s: hooks and manifest (%s)", podKey(obj), since(start))
	}
	return err
}
