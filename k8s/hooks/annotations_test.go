package hooks

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestBackupHooks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ann    map[string]string
		phase  string
		want   *Exec
		bad    bool   // want.Err set
		warned string // a warning contains this
	}{
		{name: "none", ann: map[string]string{"other": "x"}, phase: Pre},
		{name: "container without command is no hook", ann: map[string]string{"pre.hook.backup.cairn.io/container": "db"}, phase: Pre},
		{name: "cairn json", phase: Pre, ann: map[string]string{
			"pre.hook.backup.cairn.io/container": "db", "pre.hook.backup.cairn.io/command": `["/bin/sh", "-c", "sync"]`,
			"pre.hook.backup.cairn.io/on-error": "Continue", "pre.hook.backup.cairn.io/timeout": "2m"},
			want: &Exec{Container: "db", Command: []string{"/bin/sh", "-c", "sync"}, OnError: Continue, Timeout: 2 * time.Minute, Source: "pre.hook.backup.cairn.io"}},
		{name: "velero plain string, defaults", phase: Post, ann: map[string]string{"post.hook.backup.velero.io/command": " /usr/bin/thaw "},
			want: &Exec{Command: []string{"/usr/bin/thaw"}, OnError: Fail, Timeout: 30 * time.Second, Source: "post.hook.backup.velero.io"}},
		{name: "phases are separate", phase: Post, ann: map[string]string{"pre.hook.backup.velero.io/command": "x"}},
		{name: "cairn wins over velero", phase: Pre, warned: "both", ann: map[string]string{
			"pre.hook.backup.velero.io/command": `["velero"]`, "pre.hook.backup.velero.io/container": "v",
			"pre.hook.backup.cairn.io/command": `["cairn"]`},
			want: &Exec{Command: []string{"cairn"}, OnError: Fail, Timeout: 30 * time.Second, Source: "pre.hook.backup.cairn.io"}},
		{name: "bare seconds", phase: Pre, ann: map[string]string{"pre.hook.backup.velero.io/command": "x", "pre.hook.backup.velero.io/timeout": "300"},
			want: &Exec{Command: []string{"x"}, OnError: Fail, Timeout: 300 * time.Second, Source: "pre.hook.backup.velero.io"}},
		{name: "bad timeout and on-error fall back with warnings", phase: Pre, warned: "not a duration", ann: map[string]string{
			"pre.hook.backup.cairn.io/command": "x", "pre.hook.backup.cairn.io/timeout": "soon", "pre.hook.backup.cairn.io/on-error": "ignore"},
			want: &Exec{Command: []string{"x"}, OnError: Fail, Timeout: 30 * time.Second, Source: "pre.hook.backup.cairn.io"}},
		{name: "case of on-error", phase: Pre, ann: map[string]string{"pre.hook.backup.cairn.io/command": "x", "pre.hook.backup.cairn.io/on-error": "continue"},
			want: &Exec{Command: []string{"x"}, OnError: Continue, Timeout: 30 * time.Second, Source: "pre.hook.backup.cairn.io"}},
		{name: "bad json", phase: Pre, bad: true, ann: map[string]string{"pre.hook.backup.cairn.io/command": `["sh", `},
			want: &Exec{OnError: Fail, Timeout: 30 * time.Second, Source: "pre.hook.backup.cairn.io"}},
		{name: "empty array", phase: Pre, bad: true, ann: map[string]string{"pre.hook.backup.cairn.io/command": `[]`},
			want: &Exec{OnError: Fail, Timeout: 30 * time.Second, Source: "pre.hook.backup.cairn.io"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings := BackupHooks(tc.ann, tc.phase)
			if tc.warned != "" && !strings.Contains(strings.Join(warnings, "\n"), tc.warned) {
				t.Errorf("warnings %q lack %q", warnings, tc.warned)
			}
			if tc.warned == "" && len(warnings) > 0 {
				t.Errorf("unexpected warnings %q", warnings)
			}
			if tc.bad {
				if got == nil || !errors.Is(got.Err, ErrBadCommand) {
					t.Fatalf("got %+v, want ErrBadCommand", got)
				}
				got.Err = nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRestoreExecHook(t *testing.T) {
	got, w := RestoreExecHook(map[string]string{"post.hook.restore.velero.io/command": `["cat", "/data/x"]`,
		"post.hook.restore.velero.io/container": "app", "post.hook.restore.velero.io/exec-timeout": "5s",
		"post.hook.restore.velero.io/wait-timeout": "1m"})
	want := &Exec{Container: "app", Command: []string{"cat", "/data/x"}, OnError: Continue, Timeout: 5 * time.Second,
		WaitTimeout: time.Minute, Source: "post.hook.restore.velero.io"}
	if !reflect.DeepEqual(got, want) || len(w) > 0 {
		t.Errorf("got %+v %q, want %+v", got, w, want)
	}
	got, _ = RestoreExecHook(map[string]string{"post.hook.restore.cairn.io/command": "x", "post.hook.restore.cairn.io/on-error": "Fail"})
	if got.OnError != Fail || got.Timeout != DefaultRestoreExecTimeout || got.WaitTimeout != DefaultRestoreWaitTimeout {
		t.Errorf("defaults: %+v", got)
	}
	if got, _ := RestoreExecHook(map[string]string{"post.hook.backup.cairn.io/command": "x"}); got != nil {
		t.Errorf("a backup hook read as a restore hook: %+v", got)
	}
}

func TestInitHook(t *testing.T) {
	got, err := InitHook(map[string]string{"init.hook.restore.velero.io/container-image": "busybox",
		"init.hook.restore.velero.io/container-name": "seed", "init.hook.restore.velero.io/command": `["sh", "-c", "date"]`})
	want := &Init{Name: "seed", Image: "busybox", Command: []string{"sh", "-c", "date"}, Source: "init.hook.restore.velero.io"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, %v", got, err)
	}
	got, err = InitHook(map[string]string{"init.hook.restore.cairn.io/container-image": "img",
		"init.hook.restore.velero.io/container-image": "other"})
	if err != nil || got.Image != "img" || got.Name != DefaultInitContainerName || got.Command != nil {
		t.Errorf("got %+v, %v", got, err)
	}
	if _, err := InitHook(map[string]string{"init.hook.restore.cairn.io/container-image": "img", "init.hook.restore.cairn.io/command": "[1]"}); !errors.Is(err, ErrBadCommand) {
		t.Errorf("bad command: %v", err)
	}
	if got, err := InitHook(map[string]string{"init.hook.restore.cairn.io/command": "x"}); got != nil || err != nil {
		t.Errorf("no image: %+v %v", got, err)
	}
}

func FuzzAnnotations(f *testing.F) {
	f.Add("pre.hook.backup.cairn.io/command", `["a","b"]`, "pre.hook.backup.cairn.io/timeout", "30s")
	f.Add("post.hook.restore.velero.io/command", "x", "post.hook.restore.velero.io/wait-timeout", "99999999999")
	f.Add("init.hook.restore.velero.io/container-image", "i", "init.hook.restore.velero.io/command", `[""]`)
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		ann := map[string]string{k1: v1, k2: v2}
		for _, ph := range []string{Pre, Post} {
			if h, _ := BackupHooks(ann, ph); h != nil {
				checkExec(t, h)
			}
		}
		if h, _ := RestoreExecHook(ann); h != nil {
			checkExec(t, h)
			if h.WaitTimeout <= 0 {
				t.Fatalf("wait timeout %s", h.WaitTimeout)
			}
		}
		if in, err := InitHook(ann); err == nil && in != nil {
			if in.Image == "" || in.Name == "" || (in.Command != nil && len(in.Command) == 0) {
				t.Fatalf("init hook %+v", in)
			}
		}
	})
}

func checkExec(t *testing.T, h *Exec) {
	if h.Err == nil && (len(h.Command) == 0 || h.Command[0] == "") {
		t.Fatalf("runnable hook without a program: %+v", h)
	}
	if h.Timeout <= 0 || (h.OnError != Fail && h.OnError != Continue) {
		t.Fatalf("hook %+v", h)
	}
}
