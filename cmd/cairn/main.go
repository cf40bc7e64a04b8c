// Command cairn backs up file trees into a restic-format (v2) repository.
// Its command line follows restic's habits: the same global flags, the
// same command names and similar output.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "0.1.0-dev"

// Exit codes, as restic uses them.
const (
	exitOK          = 0
	exitFailure     = 1
	exitPartial     = 3   // backup finished, but some items could not be read
	exitInterrupted = 130 // SIGINT/SIGTERM
)

// exitError carries a specific exit code along with the message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks mistakes on the command line; the message then points
// at the command's help.
type usageError struct {
	cmd string
	err error
}

func (e *usageError) Error() string {
	return fmt.Sprintf("%v (see `%s --help`)", e.err, e.cmd)
}

// cliEnv is everything a run of the command tree sees of the process, so
// that tests can run it in-process with their own streams and environment.
type cliEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// readPassword reads one line from the terminal without echo. It is nil
	// when stdin is not a terminal.
	readPassword func(ctx context.Context) (string, error)
	// stderrTerminal says whether stderr is a terminal (progress is shown).
	stderrTerminal bool
	// termWidth returns the width of the terminal on stderr, 0 if unknown.
	termWidth func() int
}

func osEnv() *cliEnv {
	env := &cliEnv{
		stdin:          os.Stdin,
		stdout:         os.Stdout,
		stderr:         os.Stderr,
		getenv:         os.Getenv,
		stderrTerminal: term.IsTerminal(int(os.Stderr.Fd())),
		termWidth: func() int {
			w, _, err := term.GetSize(int(os.Stderr.Fd()))
			if err != nil {
				return 0
			}
			return w
		},
	}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		env.readPassword = func(ctx context.Context) (string, error) {
			return readTerminalPassword(ctx, fd)
		}
	}
	return env
}

// readTerminalPassword reads without echo; on Ctrl-C it restores the
// terminal's echo before giving up.
func readTerminalPassword(ctx context.Context, fd int) (string, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	type result struct {
		pw  []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		pw, err := term.ReadPassword(fd)
		ch <- result{pw, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			return "", fmt.Errorf("read password: %w", res.err)
		}
		return string(res.pw), nil
	case <-ctx.Done():
		_ = term.Restore(fd, state)
		return "", ctx.Err()
	}
}

func main() {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) { // keep nohup working
		sigs = append(sigs, syscall.SIGHUP) // terminal closed: release locks too
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	go func() {
		// After the first signal, a second one kills the process at once.
		<-ctx.Done()
		stop()
	}()
	stopProfiling := startProfiling()
	code := run(ctx, os.Args[1:], osEnv())
	stopProfiling()
	stop()
	os.Exit(code)
}

// run executes the command tree with args and returns the exit code. Errors
// are printed as one line on stderr.
func run(ctx context.Context, args []string, env *cliEnv) int {
	g := &globalOptions{env: env}
	root := newRootCmd(g)
	root.SetArgs(args)
	root.SetIn(env.stdin)
	root.SetOut(env.stdout)
	root.SetErr(env.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	msg := oneLine(err.Error())
	if strings.HasPrefix(msg, "unknown command") {
		msg += " (see `cairn --help`)"
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		code = exitInterrupted
		msg = "interrupted; nothing was left half-written, run the command again to finish"
	}
	fmt.Fprintf(env.stderr, "cairn: %s\n", msg)
	return code
}

// oneLine folds a multi-line message (cobra's suggestions, wrapped errors)
// into one line.
func oneLine(s string) string {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	return strings.Join(fields, " ")
}

func newRootCmd(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "cairn",
		Short: "Back up file trees into a restic-compatible repository",
		Long: `cairn backs up file trees into a repository in restic's format (version 2).

The repository is given with -r/--repo or $CAIRN_REPOSITORY, its password with
--password-file, $CAIRN_PASSWORD_FILE or $CAIRN_PASSWORD, or at a prompt.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		Version:           version,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error { return g.resolve(cmd) },
	}
	root.SetVersionTemplate("cairn {{.Version}}\n")
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{cmd: cmd.CommandPath(), err: err}
	})
	g.addFlags(root)
	root.AddCommand(
		newInitCmd(g),
		newBackupCmd(g),
		newSnapshotsCmd(g),
		newRestoreCmd(g),
		newCheckCmd(g),
		newCatCmd(g),
		newKeyCmd(g),
		newListCmd(g),
		newStatsCmd(g),
		newLsCmd(g),
		newFindCmd(g),
		newDumpCmd(g),
		newDiffCmd(g),
		newMountCmd(g),
		newUnlockCmd(g),
		newRepairCmd(g),
		newForgetCmd(g),
		newPruneCmd(g),
		newClusterCmd(g),
		newEtcdCmd(g),
		newVersionCmd(g),
		newCompletionCmd(),
	)
	for _, c := range root.Commands() {
		rejectUnknownSubcommands(c)
	}
	return root
}

// rejectUnknownSubcommands makes every command group below the root fail
// on an argument that names none of its subcommands, as the root does: by
// default cobra prints the group's help and exits 0, so a mistyped command
// in a CronJob ("cluster bakup") would succeed every night doing nothing.
// A group given no argument prints its help.
func rejectUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		rejectUnknownSubcommands(sub)
	}
	if !c.HasSubCommands() {
		return
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("%q is not a command of %q", args[0], cmd.CommandPath())
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, which it sets only for the root
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return &usageError{cmd: cmd.CommandPath(), err: errors.New(msg)}
	}
	if c.RunE == nil && c.Run == nil {
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}

// exactArgs and friends replace cobra's validators with messages that say
// what the command expects.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("%s expects %s, got %d arguments", cmd.Name(), what, len(args))}
		}
		return nil
	}
}

func rangeArgs(lo, hi int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("%s expects %s, got %d arguments", cmd.Name(), what, len(args))}
		}
		return nil
	}
}
