package hooks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/layout"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Runner runs a command in a container; *Executor is the real one.
type Runner interface {
	Exec(ctx context.Context, namespace, pod, container string, cmd []string) (Output, error)
}

// ErrHookFailed is returned by Run when a hook whose OnError is Fail did
// not succeed.
var ErrHookFailed = errors.New("hook failed")

// Pod is what running a hook needs of a pod.
type Pod struct {
	Namespace, Name string
	Phase           corev1.PodPhase
	Containers      []string // names, in spec order
	Annotations     map[string]string
}

// PodFrom reads a Pod from an unstructured pod.
func PodFrom(u *unstructured.Unstructured) (Pod, error) {
	var p corev1.Pod
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p); err != nil {
		return Pod{}, fmt.Errorf("pod %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return PodOf(&p), nil
}

// PodOf reads a Pod from a typed one.
func PodOf(p *corev1.Pod) Pod {
	out := Pod{Namespace: p.Namespace, Name: p.Name, Phase: p.Status.Phase, Annotations: p.Annotations}
	for _, c := range p.Spec.Containers {
		out.Containers = append(out.Containers, c.Name)
	}
	return out
}

// Run runs h in the pod and says how it went. Hooks of pods that are not
// Running are skipped, as Velero skips them. The returned error is
// ErrHookFailed (wrapped, with the reason) when h failed and its OnError
// is Fail; a failed Continue hook returns nil and a Failed result.
func Run(ctx context.Context, r Runner, pod Pod, h *Exec, phase string) (layout.HookResult, error) {
	res := layout.HookResult{Namespace: pod.Namespace, Pod: pod.Name, Phase: phase, Container: h.Container,
		Command: h.Command, OnError: string(h.OnError), Source: h.Source}
	if res.Container == "" && len(pod.Containers) > 0 {
		res.Container = pod.Containers[0] // Velero's default: the first container
	}
	if pod.Phase != corev1.PodRunning {
		res.Result, res.Error = layout.HookSkipped, fmt.Sprintf("the pod is %s, not Running", orUnknown(string(pod.Phase)))
		return res, nil
	}
	start := time.Now()
	err := h.Err
	if err == nil && !contains(pod.Containers, res.Container) {
		err = fmt.Errorf("the pod has no container %q (it has %s)", res.Container, strings.Join(pod.Containers, ", "))
	}
	if err == nil {
		cctx, cancel := context.WithTimeoutCause(ctx, h.Timeout, fmt.Errorf("timed out after %s", h.Timeout))
		var out Output
		out, err = r.Exec(cctx, pod.Namespace, pod.Name, res.Container, h.Command)
		cancel()
		res.Stdout, res.Stderr, res.Truncated, res.ExitCode = out.Stdout, out.Stderr, out.Truncated, out.ExitCode
	}
	res.Millis = time.Since(start).Milliseconds()
	if err == nil {
		res.Result = layout.HookSucceeded
		return res, nil
	}
	res.Result, res.Error = layout.HookFailed, err.Error()
	if h.OnError == Fail {
		return res, fmt.Errorf("%w: %s hook (%s) in %s/%s container %s: %s", ErrHookFailed, phase, h.Source, pod.Namespace, pod.Name, res.Container, err)
	}
	return res, nil
}

// Describe is one line for a log: what ran and how it ended, with the
// start of its output.
func Describe(r layout.HookResult) string {
	s := fmt.Sprintf("%s hook of pod %s/%s (container %s, %s, on-error %s): %s",
		r.Phase, r.Namespace, r.Pod, r.Container, quoteCommand(r.Command), r.OnError, r.Result)
	if r.Error != "" {
		s += ": " + r.Error
	}
	if r.Result != layout.HookSkipped {
		s += fmt.Sprintf(" (%d ms)", r.Millis)
	}
	for _, o := range []struct{ name, text string }{{"stdout", r.Stdout}, {"stderr", r.Stderr}} {
		if t := strings.TrimSpace(o.text); t != "" {
			s += fmt.Sprintf("; %s: %q", o.name, firstLines(t, 512))
		}
	}
	return s
}

func quoteCommand(c []string) string {
	q := make([]string, len(c))
	for i, w := range c {
		q[i] = fmt.Sprintf("%q", w)
	}
	return "[" + strings.Join(q, " ") + "]"
}

func firstLines(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}
