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

// streamSource is where a stream backup reads from.
type streamSource struct {
	open func(ctx context.Context) (io.Reader, error)
	// done is told how reading the stream ended (nil: at EOF); an error
	// it returns means the stream is not whole and no snapshot is saved.
	done func(readErr error) error
}

// source is standard input, or the output of the command in args.
func (f *stdinFlags) source(g *globalOptions, args []string) streamSource {
	if !f.fromCommand {
		return streamSource{
			open: func(context.Context) (io.Reader, error) { return g.env.stdin, nil },
			done: func(err error) error { return err },
		}
	}
	var cmd *exec.Cmd
	return streamSource{
		open: func(ctx context.Context) (io.Reader, error) {
			cmd = exec.CommandContext(ctx, args[0], args[1:]...)
			cmd.Stderr = g.env.stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				return nil, err
			}
			if err := cmd.Start(); err != nil {
				return nil, fmt.Errorf("--stdin-from-command: start %s: %w", args[0], err)
			}
			return out, nil
		},
		done: func(readErr error) error {
			if readErr != nil {
				_ = cmd.Process.Kill()
			}
			if werr := cmd.Wait(); werr != nil && readErr == nil {
				return fmt.Errorf("--stdin-from-command: %s failed (%v); no snapshot was saved: fix the command and run the backup again", args[0], werr)
			}
			return readErr
		},
	}
}

// backupStream saves a stream as the file name in a new snapshot. A
// stream that ends badly (a failing command, a broken etcd stream) leaves
// no snapshot; its data stays in the repository until prune, like a
// killed backup's.
func backupStream(ctx context.Context, g *globalOptions, name string, src streamSource, opts archiver.ArchiveOptions) error {
	r, release, err := g.openWithIndex(ctx)
	if err != nil {
		return err
	}
	defer release()
	in, err := src.open(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	stop := g.startProgress(opts.Progress, "files")
	a := archiver.NewArchiver(r, opts)
	tree, paths, err := a.SaveStream(ctx, name, in)
	stop()
	if err := src.done(err); err != nil {
		return err
	}
	sn, err := a.Finish(ctx, tree, paths)
	if err != nil {
		return err
	}
	printBackupSummary(g, sn, time.Since(start))
	return nil
}
