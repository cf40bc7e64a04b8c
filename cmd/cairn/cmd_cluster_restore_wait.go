package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/spf13/cobra"
)

func init() { clusterSubcommands = append(clusterSubcommands, newClusterRestoreWaitCmd) }

type restoreWaitFlags struct {
	root    string
	marker  string
	volumes []string
	timeout time.Duration
}

// restoreWaitPoll is how often the volumes are looked at; restoreWaitNote
// how often the command says what it still waits for.
var (
	restoreWaitPoll = time.Second
	restoreWaitNote = time.Minute
)

func newClusterRestoreWaitCmd(g *globalOptions, _ *clusterOptions) *cobra.Command {
	var f restoreWaitFlags
	cmd := &cobra.Command{
		Use:   "restore-wait --marker NAME --volumes A,B",
		Short: "Wait until the agent has restored a pod's volume data (the init container of restored pods)",
		Long: `Wait until every listed volume, mounted at --volumes-root/<volume>, holds
the done marker .cairn-restore-<NAME> that the node agent writes at the
volume's root after restoring its data; then exit 0. Nothing is changed.

cairn cluster restore puts this command, in the cairn image, as the first
init container (` + volapi.RestoreWaitContainer + `) into every restored pod with
volume data, so that the pod's containers start on the restored files. It
needs no repository and no cluster access. With --timeout it gives up, with
exit 1, after that long (the kubelet then runs it again); by default it
waits as long as it takes.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRestoreWait(cmd.Context(), g, &f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.root, "volumes-root", volapi.RestoreWaitRoot, "`directory` the volumes are mounted under, one directory each")
	fs.StringVar(&f.marker, "marker", "", "the restore's `name`: the marker is .cairn-restore-NAME")
	fs.StringSliceVar(&f.volumes, "volumes", nil, "the `volumes` to wait for (comma-separated)")
	fs.DurationVar(&f.timeout, "timeout", 0, "give up after this `duration` (0 = wait as long as it takes)")
	return cmd
}

// errRestoreWaitTimeout is what a restore-wait that gave up returns.
var errRestoreWaitTimeout = errors.New("volume data not restored in time")

func runRestoreWait(ctx context.Context, g *globalOptions, f *restoreWaitFlags) error {
	usage := func(format string, args ...any) error {
		return &usageError{cmd: "cairn cluster restore-wait", err: fmt.Errorf(format, args...)}
	}
	if f.marker == "" || strings.ContainsAny(f.marker, "/\x00") {
		return usage("--marker %q: give the restore's name", f.marker)
	}
	if len(f.volumes) == 0 {
		return usage("--volumes: name the volumes to wait for")
	}
	for _, v := range f.volumes {
		if v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/\x00") {
			return usage("--volumes: %q is not a volume name", v)
		}
	}
	if f.timeout < 0 {
		return usage("--timeout %s: must not be negative", f.timeout)
	}
	marker := volapi.DoneMarker(f.marker)
	// A volume directory that is not there is a mistake in the pod (or
	// the flags), not something to wait for.
	for _, v := range f.volumes {
		if st, err := os.Stat(filepath.Join(f.root, v)); err != nil || !st.IsDir() {
			return fmt.Errorf("volume %s is not mounted at %s: mount it there or fix --volumes-root", v, filepath.Join(f.root, v))
		}
	}
	start := time.Now()
	g.printf("waiting for the restored data of %s (marker %s)\n", strings.Join(f.volumes, ", "), marker)
	lastNote := start
	for {
		var missing []string
		for _, v := range f.volumes {
			if _, err := os.Lstat(filepath.Join(f.root, v, marker)); err != nil {
				missing = append(missing, v)
			}
		}
		if len(missing) == 0 {
			g.printf("volume data restored: %s (%s)\n", strings.Join(f.volumes, ", "), formatDuration(time.Since(start)))
			return nil
		}
		if f.timeout > 0 && time.Since(start) >= f.timeout {
			return fmt.Errorf("%w: %s without marker %s after %s: is the cairn agent running on this node? (kubectl get volumerestores -A)",
				errRestoreWaitTimeout, strings.Join(missing, ", "), marker, f.timeout)
		}
		if time.Since(lastNote) >= restoreWaitNote {
			g.printf("still waiting for %s (%s)\n", strings.Join(missing, ", "), formatDuration(time.Since(start)))
			lastNote = time.Now()
		}
		wait := restoreWaitPoll
		if rem := f.timeout - time.Since(start); f.timeout > 0 && rem < wait {
			wait = rem
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}
