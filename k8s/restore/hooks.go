package restore

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/k8s/hooks"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/volapi"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Restore hooks (k8s/hooks), from the restored pod's annotations:
// init.hook.restore.… adds an init container, after cairn's restore-wait
// container so that it runs on the restored data; post.hook.restore.…
// runs a command in the pod once it is Running (its init containers,
// restore-wait among them, done), bounded by wait-timeout and
// exec-timeout. Both apply to the pods this restore creates; a dry run
// adds the init container and runs nothing.

// hookRun is the restore's state of exec hooks.
type hookRun struct {
	wg      chan struct{} // closed when the last started hook is done
	running int
	errs    []string // Fail hooks that failed: errors of the restore
}

// addInitHook adds the pod's init hook container (plan).
func (rs *restorer) addInitHook(it *restoreItem) {
	in, err := hooks.InitHook(it.obj.GetAnnotations())
	name := it.m.Namespace + "/" + it.m.Name
	if err != nil {
		rs.warn("pod %s: init hook not added: %v", name, err)
		return
	}
	if in == nil {
		return
	}
	c := map[string]any{"name": in.Name, "image": in.Image}
	if in.Command != nil {
		cmd := make([]any, len(in.Command))
		for i, w := range in.Command {
			cmd[i] = w
		}
		c["command"] = cmd
	}
	inits, _, _ := unstructured.NestedSlice(it.obj.Object, "spec", "initContainers")
	// One of that name from an earlier restore of a backed-up restored
	// pod goes: a pod may not have two.
	inits = slices.DeleteFunc(inits, func(v any) bool {
		m, _ := v.(map[string]any)
		return m["name"] == in.Name
	})
	at := 0
	if len(inits) > 0 {
		if m, _ := inits[0].(map[string]any); m["name"] == volapi.RestoreWaitContainer {
			at = 1
		}
	}
	_ = unstructured.SetNestedSlice(it.obj.Object, slices.Insert(inits, at, any(c)), "spec", "initContainers")
	rs.addHookResult(layout.HookResult{Namespace: it.obj.GetNamespace(), Pod: it.obj.GetName(), Phase: layout.HookInit,
		Container: in.Name, Command: in.Command, Source: in.Source, Result: layout.HookAdded})
}

// startExecHook runs the created pod's exec hook in the background.
func (rs *restorer) startExecHook(ctx context.Context, it *restoreItem) {
	if rs.opts.Hooks == nil || rs.opts.DryRun || it.result.Action != ActionCreated {
		return
	}
	h, warnings := hooks.RestoreExecHook(it.obj.GetAnnotations())
	for _, w := range warnings {
		rs.warn("pod %s: %s", itemName(it.result), w)
	}
	if h == nil {
		return
	}
	ns, name, uid := it.obj.GetNamespace(), it.obj.GetName(), it.uid
	get := func(ctx context.Context) (*corev1.Pod, error) {
		u, err := rs.dyn.Resource(grPod.WithVersion("v1")).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		if uid != "" && string(u.GetUID()) != uid {
			return nil, apierrors.NewNotFound(grPod, name) // replaced: not the pod this restore made
		}
		var p corev1.Pod
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p); err != nil {
			return nil, err
		}
		return &p, nil
	}
	rs.mu.Lock()
	hr := &rs.hooks
	if hr.running == 0 {
		hr.wg = make(chan struct{})
	}
	hr.running++
	rs.mu.Unlock()
	go func() {
		res, err := hooks.RunAfterRestore(ctx, rs.opts.Hooks, get, h, rs.opts.HookPoll)
		res.Namespace, res.Pod = ns, name
		rs.addHookResult(res)
		rs.mu.Lock()
		defer rs.mu.Unlock()
		switch {
		case errors.Is(err, hooks.ErrHookFailed):
			hr.errs = append(hr.errs, err.Error())
		case res.Result == layout.HookFailed:
			rs.res.Warnings = append(rs.res.Warnings, "restore "+hooks.Describe(res))
		}
		hr.running--
		if hr.running == 0 {
			close(hr.wg)
		}
	}()
}

// waitHooks waits for the exec hooks started.
func (rs *restorer) waitHooks() {
	rs.mu.Lock()
	wg := rs.hooks.wg
	running := rs.hooks.running
	rs.mu.Unlock()
	if running > 0 {
		<-wg
	}
}

func (rs *restorer) addHookResult(r layout.HookResult) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.res.Hooks = append(rs.res.Hooks, r)
}

// sortHooks orders the hook results by pod, init first.
func sortHooks(hs []layout.HookResult) {
	slices.SortStableFunc(hs, func(a, b layout.HookResult) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		if c := strings.Compare(a.Pod, b.Pod); c != 0 {
			return c
		}
		return strings.Compare(a.Phase, b.Phase) // "init" < "post-restore"
	})
}
