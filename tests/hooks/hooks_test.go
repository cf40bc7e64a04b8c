package hooks

import (
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/tests/node"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type backupOut struct {
	SnapshotID string              `json:"snapshot_id"`
	Phase      string              `json:"phase"`
	Warnings   []string            `json:"warnings"`
	Errors     []string            `json:"errors"`
	Volumes    []layout.VolumeInfo `json:"volumes"`
	Hooks      []layout.HookResult `json:"hooks"`
}

// TestBackupHooks: pre hooks run before a pod's volume is copied (their
// marker is in the snapshot), post hooks after (their file is not); a
// failing Fail pre hook fails that pod's volume only and skips its post
// hook; Continue goes on; timeouts end a hook; Velero's spellings work and
// cairn's win over them.
func TestBackupHooks(t *testing.T) {
	e := newEnv(t)
	ns := "bh-" + e.sfx
	e.namespace(ns)
	defer e.deleteNamespace(ns)
	e.agent()
	const vols = "backup.cairn.io/backup-volumes"
	e.pod(ns, "app", map[string]string{vols: "data",
		"pre.hook.backup.cairn.io/container": "main",
		"pre.hook.backup.cairn.io/command":   `["sh", "-c", "echo frozen > /data/marker && echo pre-out"]`,
		"post.hook.backup.velero.io/command": `["sh", "-c", "echo thawed > /data/after && echo post-out"]`})
	e.pod(ns, "failing", map[string]string{vols: "data",
		"pre.hook.backup.velero.io/command":  `["sh", "-c", "echo boom >&2; exit 3"]`, // on-error defaults to Fail
		"post.hook.backup.velero.io/command": `["sh", "-c", "echo ran > /data/post-ran"]`})
	e.pod(ns, "cont", map[string]string{ // no volume copied: hooks around the manifest
		"pre.hook.backup.cairn.io/command":  `["sh", "-c", "exit 1"]`,
		"pre.hook.backup.cairn.io/on-error": "Continue",
		"post.hook.backup.cairn.io/command": "true"}) // a plain string, as Velero takes it
	e.pod(ns, "slow", map[string]string{
		"pre.hook.backup.velero.io/command":  `["sleep", "30"]`,
		"pre.hook.backup.velero.io/timeout":  "1s",
		"pre.hook.backup.velero.io/on-error": "Continue"})
	e.pod(ns, "both", map[string]string{
		"pre.hook.backup.cairn.io/command":  `["sh", "-c", "echo cairn"]`,
		"pre.hook.backup.velero.io/command": `["sh", "-c", "echo velero"]`})
	e.running(ns, "app", "failing", "cont", "slow", "both")

	out := decode[backupOut](t, e.cairn(3, "--json", "cluster", "backup", "b1", "--kubeconfig", clu.Kubeconfig,
		"--include-namespaces", ns, "--agent-namespace", e.agentNS))
	if out.Phase != layout.PhasePartiallyFailed {
		t.Errorf("phase %s, want PartiallyFailed", out.Phase)
	}
	vol := map[string]layout.VolumeInfo{}
	for _, v := range out.Volumes {
		vol[v.Pod] = v
	}
	if v := vol["app"]; v.Result != layout.VolumeCompleted {
		t.Errorf("app's volume: %+v", v)
	}
	if v := vol["failing"]; v.Result != layout.VolumeFailed || !strings.Contains(v.Error, "pre hook") {
		t.Errorf("failing's volume: %+v", v)
	}

	check := func(pod, phase, result string, ok func(*layout.HookResult) bool) {
		t.Helper()
		h := hook(out.Hooks, pod, phase)
		if h == nil {
			t.Errorf("no %s hook result for %s in %+v", phase, pod, out.Hooks)
			return
		}
		if h.Result != result || (ok != nil && !ok(h)) {
			t.Errorf("%s hook of %s: %+v", phase, pod, *h)
		}
	}
	check("app", "pre", layout.HookSucceeded, func(h *layout.HookResult) bool {
		return h.Stdout == "pre-out\n" && h.Source == "pre.hook.backup.cairn.io"
	})
	check("app", "post", layout.HookSucceeded, func(h *layout.HookResult) bool {
		return h.Stdout == "post-out\n" && h.Source == "post.hook.backup.velero.io"
	})
	check("failing", "pre", layout.HookFailed, func(h *layout.HookResult) bool {
		return h.ExitCode != nil && *h.ExitCode == 3 && h.Stderr == "boom\n" && h.OnError == "Fail"
	})
	if h := hook(out.Hooks, "failing", "post"); h != nil {
		t.Errorf("post hook ran after a failed Fail pre hook: %+v", *h)
	}
	check("cont", "pre", layout.HookFailed, func(h *layout.HookResult) bool { return h.OnError == "Continue" })
	check("cont", "post", layout.HookSucceeded, nil)
	check("slow", "pre", layout.HookFailed, func(h *layout.HookResult) bool {
		return strings.Contains(h.Error, "timed out") && h.Millis < 20000
	})
	check("both", "pre", layout.HookSucceeded, func(h *layout.HookResult) bool { return h.Stdout == "cairn\n" })
	if !slices.ContainsFunc(out.Warnings, func(w string) bool { return strings.Contains(w, "both pre.hook.backup.cairn.io/command") }) {
		t.Errorf("no warning about both spellings: %q", out.Warnings)
	}

	// Pre ran before the copy, post after it.
	if got := e.cairn(0, "dump", out.SnapshotID, "/volumes/"+ns+"/app/data/marker"); got != "frozen\n" {
		t.Errorf("marker in the snapshot: %q", got)
	}
	if _, _, code := e.cairnCode("dump", out.SnapshotID, "/volumes/"+ns+"/app/data/after"); code == 0 {
		t.Error("the post hook's file is in the snapshot: it ran before the copy")
	}
	if got, err := e.exec(ns, "app", "cat", "/data/after"); err != nil || got != "thawed\n" {
		t.Errorf("post hook's file in the pod: %q, %v", got, err)
	}
	if _, err := e.exec(ns, "failing", "test", "-e", "/data/post-ran"); err == nil {
		t.Error("failing's post hook ran")
	}
	if desc, _, _ := e.cairnCode("cluster", "describe", "b1"); !strings.Contains(desc, ns+"/failing pre (main): Failed: exited with code 3") {
		t.Errorf("describe lacks failing's hook:\n%s", desc)
	}
	logText := e.cairn(0, "cluster", "logs", "b1")
	for _, want := range []string{"pre hook of pod " + ns + "/app", `stdout: "pre-out"`, "exited with code 3"} {
		if !strings.Contains(logText, want) {
			t.Errorf("backup log lacks %q", want)
		}
	}
}

type restoreOut struct {
	Phase    string              `json:"phase"`
	Warnings []string            `json:"warnings"`
	Errors   []string            `json:"errors"`
	Hooks    []layout.HookResult `json:"hooks"`
}

// TestRestoreHooks: a restore with volume data puts the init hook's
// container after restore-wait, runs the exec hook once the pod is
// Running (so it reads the restored data) and records its output; a
// failing Fail restore hook makes the restore PartiallyFailed.
func TestRestoreHooks(t *testing.T) {
	e := newEnv(t)
	src, dst := "rh-"+e.sfx, "rh2-"+e.sfx
	e.namespace(src)
	defer e.deleteNamespace(src)
	defer e.deleteNamespace(dst)
	e.agent()
	e.pod(src, "web", map[string]string{"backup.cairn.io/backup-volumes": "data",
		"post.hook.restore.velero.io/command":         `["sh", "-c", "cat /data/file; echo hook-ran"]`,
		"post.hook.restore.velero.io/wait-timeout":    "2m",
		"init.hook.restore.velero.io/container-image": node.BusyboxImage,
		"init.hook.restore.velero.io/container-name":  "seed",
		"init.hook.restore.velero.io/command":         `["sh", "-c", "echo seeded"]`})
	e.pod(src, "broken", map[string]string{
		"post.hook.restore.cairn.io/command":  `["sh", "-c", "exit 4"]`,
		"post.hook.restore.cairn.io/on-error": "Fail"})
	e.running(src, "web", "broken")
	if _, err := e.exec(src, "web", "sh", "-c", "echo restored-data > /data/file"); err != nil {
		t.Fatal(err)
	}
	e.cairn(0, "cluster", "backup", "b2", "--kubeconfig", clu.Kubeconfig, "--include-namespaces", src, "--agent-namespace", e.agentNS)

	out := decode[restoreOut](t, e.cairn(3, "--json", "cluster", "restore", "b2", "--kubeconfig", clu.Kubeconfig,
		"--namespace-mappings", src+":"+dst, "--restore-helper-image", cairnImage, "--agent-namespace", e.agentNS))
	if out.Phase != layout.PhasePartiallyFailed {
		t.Errorf("phase %s, want PartiallyFailed", out.Phase)
	}
	if h := hook(out.Hooks, "web", layout.HookPostRestore); h == nil || h.Result != layout.HookSucceeded || h.Stdout != "restored-data\nhook-ran\n" {
		t.Errorf("web's exec hook: %+v (all: %+v)", h, out.Hooks)
	}
	if h := hook(out.Hooks, "web", layout.HookInit); h == nil || h.Result != layout.HookAdded || h.Container != "seed" {
		t.Errorf("web's init hook: %+v", h)
	}
	if h := hook(out.Hooks, "broken", layout.HookPostRestore); h == nil || h.Result != layout.HookFailed || h.ExitCode == nil || *h.ExitCode != 4 {
		t.Errorf("broken's exec hook: %+v", h)
	}
	if !slices.ContainsFunc(out.Errors, func(s string) bool { return strings.Contains(s, "broken") }) {
		t.Errorf("errors lack broken's hook: %q", out.Errors)
	}
	if desc, _, _ := e.cairnCode("cluster", "describe-restore", "latest"); !strings.Contains(desc, dst+"/web post-restore (main): Succeeded") {
		t.Errorf("describe-restore lacks web's hook:\n%s", desc)
	}
	p, err := e.cs.CoreV1().Pods(dst).Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var inits []string
	for _, c := range p.Spec.InitContainers {
		inits = append(inits, c.Name)
	}
	if !slices.Equal(inits, []string{volapi.RestoreWaitContainer, "seed"}) {
		t.Errorf("init containers %v, want restore-wait then seed", inits)
	}
	for _, s := range p.Status.InitContainerStatuses {
		if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
			t.Errorf("init container %s: %+v", s.Name, s.State)
		}
	}
	// The original still runs, untouched.
	if got, err := e.exec(src, "web", "cat", "/data/file"); err != nil || got != "restored-data\n" {
		t.Errorf("original pod: %q, %v", got, err)
	}
}
