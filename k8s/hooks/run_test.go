package hooks

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/layout"
	corev1 "k8s.io/api/core/v1"
)

// fakeRunner stands in for pods/exec: Run's decisions are pure logic.
type fakeRunner struct {
	calls []string
	fn    func(ctx context.Context) (Output, error)
}

func (f *fakeRunner) Exec(ctx context.Context, ns, pod, container string, cmd []string) (Output, error) {
	f.calls = append(f.calls, container+":"+strings.Join(cmd, " "))
	return f.fn(ctx)
}

func TestRun(t *testing.T) {
	running := Pod{Namespace: "ns", Name: "p", Phase: corev1.PodRunning, Containers: []string{"app", "side"}}
	exit := func(code int) func(context.Context) (Output, error) {
		return func(context.Context) (Output, error) {
			return Output{Stderr: "e", ExitCode: &code}, errors.New("exited")
		}
	}
	ok := func(context.Context) (Output, error) { zero := 0; return Output{Stdout: "out", ExitCode: &zero}, nil }
	block := func(ctx context.Context) (Output, error) { <-ctx.Done(); return Output{}, context.Cause(ctx) }
	for _, tc := range []struct {
		name    string
		pod     Pod
		h       Exec
		fn      func(context.Context) (Output, error)
		result  string
		failErr bool   // ErrHookFailed returned
		call    string // the exec made, "" = none
		errHas  string
	}{
		{name: "ok in the first container", pod: running, h: Exec{Command: []string{"sync"}, OnError: Fail, Timeout: time.Second},
			fn: ok, result: layout.HookSucceeded, call: "app:sync"},
		{name: "named container", pod: running, h: Exec{Container: "side", Command: []string{"x"}, OnError: Fail, Timeout: time.Second},
			fn: ok, result: layout.HookSucceeded, call: "side:x"},
		{name: "Fail", pod: running, h: Exec{Command: []string{"x"}, OnError: Fail, Timeout: time.Second},
			fn: exit(2), result: layout.HookFailed, failErr: true, call: "app:x"},
		{name: "Continue", pod: running, h: Exec{Command: []string{"x"}, OnError: Continue, Timeout: time.Second},
			fn: exit(2), result: layout.HookFailed, call: "app:x"},
		{name: "timeout", pod: running, h: Exec{Command: []string{"x"}, OnError: Fail, Timeout: 50 * time.Millisecond},
			fn: block, result: layout.HookFailed, failErr: true, call: "app:x", errHas: "timed out after 50ms"},
		{name: "not running: skipped", pod: Pod{Phase: corev1.PodPending, Containers: []string{"app"}}, h: Exec{Command: []string{"x"}, OnError: Fail, Timeout: time.Second},
			fn: ok, result: layout.HookSkipped},
		{name: "no such container", pod: running, h: Exec{Container: "db", Command: []string{"x"}, OnError: Fail, Timeout: time.Second},
			fn: ok, result: layout.HookFailed, failErr: true, errHas: `no container "db"`},
		{name: "bad command", pod: running, h: Exec{Err: ErrBadCommand, OnError: Continue, Timeout: time.Second},
			fn: ok, result: layout.HookFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeRunner{fn: tc.fn}
			res, err := Run(context.Background(), r, tc.pod, &tc.h, Pre)
			if res.Result != tc.result || errors.Is(err, ErrHookFailed) != tc.failErr || (err != nil && !tc.failErr) {
				t.Fatalf("result %+v, err %v", res, err)
			}
			if got := strings.Join(r.calls, ","); got != tc.call {
				t.Errorf("calls %q, want %q", got, tc.call)
			}
			if tc.errHas != "" && !strings.Contains(res.Error, tc.errHas) {
				t.Errorf("error %q lacks %q", res.Error, tc.errHas)
			}
			if d := Describe(res); !strings.Contains(d, res.Result) {
				t.Errorf("describe %q", d)
			}
		})
	}
}

func TestCapped(t *testing.T) {
	c := &capped{max: 5}
	c.Write([]byte("abc"))
	c.Write([]byte("defg"))
	c.Write([]byte("h"))
	if c.String() != "abcde" || c.dropped != 3 {
		t.Errorf("%q %d", c.String(), c.dropped)
	}
}

func TestRunAfterRestoreWaits(t *testing.T) {
	n := 0
	get := func(context.Context) (*corev1.Pod, error) {
		n++
		p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
		p.Name, p.Namespace = "p", "ns"
		p.Status.Phase = corev1.PodPending
		if n >= 3 {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		}
		return p, nil
	}
	r := &fakeRunner{fn: func(context.Context) (Output, error) { return Output{}, nil }}
	h := &Exec{Command: []string{"x"}, OnError: Continue, Timeout: time.Second, WaitTimeout: 5 * time.Second}
	res, err := RunAfterRestore(context.Background(), r, get, h, time.Millisecond)
	if err != nil || res.Result != layout.HookSucceeded || n != 3 || len(r.calls) != 1 {
		t.Fatalf("%+v %v after %d reads", res, err, n)
	}
	// Never running: the wait-timeout ends it; Fail makes it an error.
	n = -1 << 30
	h.OnError, h.WaitTimeout = Fail, 30*time.Millisecond
	res, err = RunAfterRestore(context.Background(), r, get, h, time.Millisecond)
	if !errors.Is(err, ErrHookFailed) || res.Result != layout.HookFailed || !strings.Contains(res.Error, "wait-timeout") || len(r.calls) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
}
