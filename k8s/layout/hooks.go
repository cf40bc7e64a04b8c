package layout

// HookResult is one hook command a backup or restore ran (or meant to
// run) in a pod: backup.json's "hooks" and the restore result's.
type HookResult struct {
	Namespace string   `json:"namespace"`
	Pod       string   `json:"pod"`
	Phase     string   `json:"phase"` // HookPre or HookPost (backup), HookPostRestore or HookInit (restore)
	Container string   `json:"container"`
	Command   []string `json:"command"`
	OnError   string   `json:"on_error"` // Fail or Continue
	Source    string   `json:"source"`   // the annotation prefix it came from, e.g. "pre.hook.backup.velero.io"
	Result    string   `json:"result"`   // HookSucceeded, HookFailed or HookSkipped
	ExitCode  *int     `json:"exit_code,omitempty"`
	Stdout    string   `json:"stdout,omitempty"` // capped; see Truncated
	Stderr    string   `json:"stderr,omitempty"`
	Truncated bool     `json:"truncated,omitempty"` // stdout or stderr was cut at the cap
	Error     string   `json:"error,omitempty"`     // why it failed, or why it was skipped
	Millis    int64    `json:"millis"`              // how long it ran
}

// Phases and results of hooks.
const (
	HookPre         = "pre"
	HookPost        = "post"
	HookPostRestore = "post-restore"
	HookInit        = "init" // a restore's init container hook

	HookSucceeded = "Succeeded"
	HookFailed    = "Failed"
	HookSkipped   = "Skipped"
	HookAdded     = "Added" // an init container hook put into the pod
)
