package hooks

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/k8s/layout"
	corev1 "k8s.io/api/core/v1"
)

// RunAfterRestore waits (up to h.WaitTimeout) until the restored pod is
// Running with h's container running, and runs h in it. The pod runs only
// once its init containers are done, cairn's restore-wait among them: by
// then its volume data is restored. get reads the pod; poll is how often
// (0 = 1 s). The error is as Run's.
func RunAfterRestore(ctx context.Context, r Runner, get func(context.Context) (*corev1.Pod, error), h *Exec, poll time.Duration) (layout.HookResult, error) {
	if poll <= 0 {
		poll = time.Second
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, h.WaitTimeout)
	defer cancel()
	var last string
	for {
		p, err := get(wctx)
		switch {
		case err != nil:
			last = err.Error()
		case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
			return failWait(p, h, fmt.Sprintf("the pod ended (%s) before the hook could run", p.Status.Phase))
		case p.Status.Phase == corev1.PodRunning && containerRunning(p, containerOf(p, h)):
			return Run(ctx, r, PodOf(p), h, layout.HookPostRestore)
		default:
			last = fmt.Sprintf("the pod is %s", orUnknown(string(p.Status.Phase)))
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return failWait(p, h, "interrupted: "+ctx.Err().Error())
			}
			return failWait(p, h, fmt.Sprintf("container not running within the wait-timeout (%s, waited %s): %s",
				h.WaitTimeout, time.Since(start).Round(time.Second), last))
		case <-time.After(poll):
		}
	}
}

func containerOf(p *corev1.Pod, h *Exec) string {
	if h.Container == "" && len(p.Spec.Containers) > 0 {
		return p.Spec.Containers[0].Name
	}
	return h.Container
}

func containerRunning(p *corev1.Pod, name string) bool {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == name {
			return s.State.Running != nil
		}
	}
	return false
}

// failWait is the result of a hook that never ran.
func failWait(p *corev1.Pod, h *Exec, why string) (layout.HookResult, error) {
	res := layout.HookResult{Phase: layout.HookPostRestore, Container: h.Container, Command: h.Command,
		OnError: string(h.OnError), Source: h.Source, Result: layout.HookFailed, Error: why}
	if p != nil {
		res.Namespace, res.Pod, res.Container = p.Namespace, p.Name, containerOf(p, h)
	}
	if h.OnError == Fail {
		return res, fmt.Errorf("%w: restore hook (%s) in %s/%s: %s", ErrHookFailed, h.Source, res.Namespace, res.Pod, why)
	}
	return res, nil
}
