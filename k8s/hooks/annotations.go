// Package hooks runs the commands pod annotations ask for around a
// backup of the pod's volumes and after a restore of the pod, as Velero
// users write them: pre.hook.backup.…, post.hook.backup.…,
// post.hook.restore.… (exec hooks) and init.hook.restore.… (an init
// container added to the restored pod). cairn's spellings
// (…cairn.io/…) and Velero's (…velero.io/…) are read; when both name a
// command for the same hook, cairn's set is used and Velero's ignored.
//
// annotations.go is pure parsing; exec.go runs a command through the
// pods/exec API; run.go runs a hook in a pod and records the result.
package hooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// OnError says what a failed hook means.
type OnError string

// Modes of OnError.
const (
	// Fail: a failed pre backup hook fails the pod's volumes (they are not
	// copied) and its post hook does not run; a failed restore hook is an
	// error of the restore. Either makes the backup or restore
	// PartiallyFailed.
	Fail OnError = "Fail"
	// Continue: a failed hook is a warning; the rest goes on.
	Continue OnError = "Continue"
)

// Defaults, Velero's.
const (
	DefaultBackupTimeout      = 30 * time.Second
	DefaultRestoreExecTimeout = 30 * time.Second
	// DefaultRestoreWaitTimeout bounds the wait for a restored pod's
	// container to run. Velero waits without end when wait-timeout is
	// unset; a CLI that hangs on a crash-looping pod helps no one.
	DefaultRestoreWaitTimeout = 10 * time.Minute
	// DefaultInitContainerName names an init hook's container when
	// container-name is not given.
	DefaultInitContainerName = "restore-hook"
)

// Phases of backup hooks.
const (
	Pre  = "pre"
	Post = "post"
)

// Domains of the annotations, cairn's first: it wins.
var domains = []string{"cairn.io", "velero.io"}

// ErrBadCommand is a command annotation that cannot be run.
var ErrBadCommand = errors.New("bad hook command")

// Exec is one command to run in a container of a pod.
type Exec struct {
	Container string   // "" = the pod's first container
	Command   []string // never empty after a successful parse
	OnError   OnError
	// Timeout bounds the command; WaitTimeout (restore hooks only) the
	// wait for the container to run before it.
	Timeout     time.Duration
	WaitTimeout time.Duration
	// Source is the annotation prefix it was read from, e.g.
	// "pre.hook.backup.velero.io".
	Source string
	// Err is set when the annotations name a command that cannot run (bad
	// JSON, empty): the hook counts as failed with its OnError.
	Err error
}

// Init is an init container a restore adds to the pod.
type Init struct {
	Name    string
	Image   string
	Command []string // nil = the image's entrypoint
	Source  string
}

// BackupHooks reads a pod's pre or post backup hook (phase Pre or Post)
// from its annotations; nil when none is set. Warnings name annotation
// mistakes that were replaced by defaults.
func BackupHooks(annotations map[string]string, phase string) (h *Exec, warnings []string) {
	prefix, ok := choose(annotations, phase+".hook.backup.", "command")
	if !ok {
		return nil, nil
	}
	if other := otherSet(annotations, phase+".hook.backup.", prefix, "command"); other != "" {
		warnings = append(warnings, fmt.Sprintf("both %s/command and %s/command are set: %s's hook is used", prefix, other, prefix))
	}
	h = &Exec{Source: prefix, Container: strings.TrimSpace(annotations[prefix+"/container"])}
	h.Command, h.Err = parseCommand(annotations[prefix+"/command"])
	var w string
	h.OnError, w = parseOnError(annotations, prefix+"/on-error", Fail)
	warnings = appendNonEmpty(warnings, w)
	h.Timeout, w = parseTimeout(annotations, prefix+"/timeout", DefaultBackupTimeout)
	warnings = appendNonEmpty(warnings, w)
	return h, warnings
}

// RestoreExecHook reads a pod's post.hook.restore exec hook; nil when none
// is set.
func RestoreExecHook(annotations map[string]string) (h *Exec, warnings []string) {
	prefix, ok := choose(annotations, "post.hook.restore.", "command")
	if !ok {
		return nil, nil
	}
	if other := otherSet(annotations, "post.hook.restore.", prefix, "command"); other != "" {
		warnings = append(warnings, fmt.Sprintf("both %s/command and %s/command are set: %s's hook is used", prefix, other, prefix))
	}
	h = &Exec{Source: prefix, Container: strings.TrimSpace(annotations[prefix+"/container"])}
	h.Command, h.Err = parseCommand(annotations[prefix+"/command"])
	var w string
	h.OnError, w = parseOnError(annotations, prefix+"/on-error", Continue)
	warnings = appendNonEmpty(warnings, w)
	h.Timeout, w = parseTimeout(annotations, prefix+"/exec-timeout", DefaultRestoreExecTimeout)
	warnings = appendNonEmpty(warnings, w)
	h.WaitTimeout, w = parseTimeout(annotations, prefix+"/wait-timeout", DefaultRestoreWaitTimeout)
	warnings = appendNonEmpty(warnings, w)
	return h, warnings
}

// InitHook reads a pod's init.hook.restore init container; nil when no
// image is set. A command that cannot be parsed is an error: the
// container is not added.
func InitHook(annotations map[string]string) (*Init, error) {
	prefix, ok := choose(annotations, "init.hook.restore.", "container-image")
	if !ok {
		return nil, nil
	}
	in := &Init{Source: prefix, Image: strings.TrimSpace(annotations[prefix+"/container-image"]),
		Name: strings.TrimSpace(annotations[prefix+"/container-name"])}
	if in.Name == "" {
		in.Name = DefaultInitContainerName
	}
	if c, set := annotations[prefix+"/command"]; set && strings.TrimSpace(c) != "" {
		cmd, err := parseCommand(c)
		if err != nil {
			return nil, fmt.Errorf("%s/command: %w", prefix, err)
		}
		in.Command = cmd
	}
	return in, nil
}

// choose returns the first domain's prefix ("<kind><domain>") whose key
// annotation is set and not blank.
func choose(annotations map[string]string, kind, key string) (string, bool) {
	for _, d := range domains {
		p := kind + d
		if strings.TrimSpace(annotations[p+"/"+key]) != "" {
			return p, true
		}
	}
	return "", false
}

// otherSet names another domain's prefix that sets key too.
func otherSet(annotations map[string]string, kind, chosen, key string) string {
	for _, d := range domains {
		p := kind + d
		if p != chosen && strings.TrimSpace(annotations[p+"/"+key]) != "" {
			return p
		}
	}
	return ""
}

// parseCommand reads a command: a JSON array of strings, or (as Velero
// takes it) any other text as one word, the program to run.
func parseCommand(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadCommand)
	}
	if !strings.HasPrefix(s, "[") {
		return []string{s}, nil
	}
	var cmd []string
	if err := json.Unmarshal([]byte(s), &cmd); err != nil {
		return nil, fmt.Errorf("%w: not a JSON array of strings (%v); write it like [\"/bin/sh\", \"-c\", \"sync\"]", ErrBadCommand, err)
	}
	if len(cmd) == 0 || cmd[0] == "" {
		return nil, fmt.Errorf("%w: the JSON array names no program", ErrBadCommand)
	}
	return cmd, nil
}

func parseOnError(annotations map[string]string, key string, def OnError) (OnError, string) {
	v := strings.TrimSpace(annotations[key])
	switch {
	case v == "":
		return def, ""
	case strings.EqualFold(v, string(Fail)):
		return Fail, ""
	case strings.EqualFold(v, string(Continue)):
		return Continue, ""
	}
	return def, fmt.Sprintf("%s=%q is neither Fail nor Continue: %s is used", key, v, def)
}

// parseTimeout reads a Go duration ("90s", "5m"); a bare number is
// seconds (Velero would ignore it and use the default, which surprises
// the people who write "300").
func parseTimeout(annotations map[string]string, key string, def time.Duration) (time.Duration, string) {
	v := strings.TrimSpace(annotations[key])
	if v == "" {
		return def, ""
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return def, fmt.Sprintf("%s=%q is not a duration like 30s or 5m: %s is used", key, v, def)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return def, fmt.Sprintf("%s=%q is not positive: %s is used", key, v, def)
	}
	return d, ""
}

func appendNonEmpty(s []string, w string) []string {
	if w == "" {
		return s
	}
	return append(s, w)
}
