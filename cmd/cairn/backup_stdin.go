package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/snapshot/archiver"
)

// stdinFlags are restic's spellings for backing up a stream: --stdin reads
// standard input, --stdin-from-command the standard output of the
// command given as the arguments; either is saved as one file.
type stdinFlags struct {
	stdin       bool
	fromCommand bool
	filename    string
}

func (f *stdinFlags) used() bool { return f.stdin || f.fromCommand }

// check validates the stream flags against the other arguments.
func (f *stdinFlags) check(args, filesFrom []string, g *globalOptions) error {
	switch {
	case f.stdin && f.fromCommand:
		return errors.New("--stdin and --stdin-from-command contradict each other: give one of them")
	case f.stdin && len(args) > 0:
		return fmt.Errorf("--stdin reads standard input and takes no paths (got %s)", strings.Join(args, " "))
	case f.fromCommand && len(args) == 0:
		return errors.New("--stdin-from-command needs the command to run: cairn backup --stdin-from-command -- CMD [ARG]")
	case len(filesFrom) > 0:
		return errors.New("--files-from cannot be combined with --stdin or --stdin-from-command")
	case f.stdin && g.passwordFile == "" && g.env.getenv("CAIRN_PASSWORD") == "":
		return errors.New("--stdin: standard input holds the data, so the password must come from --password-file, $CAIRN_PASSWORD_FILE or $CAIRN_PASSWORD")
	}
	return nil
}

// backupStream saves standard input, or a command's output, as the file
// f.filename in a new snapshot. A command that fails leaves no snapshot
// (its data is in the repository until prune, like a killed backup's).
func backupStream(ctx context.Context, g *globalOptions, f *stdinFlags, args []string, opts archiver.ArchiveOptions) error {
	r, release, err := g.openWithIndex(ctx)
	if err != nil {
		return err
	}
	defer release()

	var in io.Reader = g.env.stdin
	var cmd *exec.Cmd
	if f.fromCommand {
		cmd = exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Stderr = g.env.stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("--stdin-from-command: start %s: %w", args[0], err)
		}
		in = out
	}
	start := time.Now()
	stop := g.startProgress(opts.Progress, "files")
	a := archiver.NewArchiver(r, opts)
	tree, paths, err := a.SaveStream(ctx, f.filename, in)
	stop()
	if cmd != nil {
		if err != nil {
			_ = cmd.Process.Kill()
		}
		if werr := cmd.Wait(); werr != nil && err == nil {
			return fmt.Errorf("--stdin-from-command: %s failed (%v); no snapshot was saved: fix the command and run the backup again", args[0], werr)
		}
	}
	if err != nil {
		return err
	}
	sn, err := a.Finish(ctx, tree, paths)
	if err != nil {
		return err
	}
	printBackupSummary(g, sn, time.Since(start))
	return nil
}
