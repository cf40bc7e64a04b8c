package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// onRepo makes a RunE that opens the repository without a lock (for
// commands that read only files nobody rewrites: snapshots, keys), runs fn
// and closes it.
func onRepo(g *globalOptions, fn func(ctx context.Context, r *repo.Repository, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		r, err := g.openRepo(cmd.Context())
		if err != nil {
			return err
		}
		defer r.Close()
		return fn(cmd.Context(), r, args)
	}
}

// openWithIndex opens the repository for a backup: a shared lock, then the
// whole index, so that blobs already stored are not written again.
func (g *globalOptions) openWithIndex(ctx context.Context) (*repo.Repository, func(), error) {
	// A backup's parent may be chosen from a listing taken before its
	// lock, and its lock may be taken ahead (see globalOptions.lock).
	g.prefetch = true
	r, release, err := g.openLocked(ctx, false)
	g.prefetch = false // not for another open by the same command
	if err != nil {
		return nil, nil, err
	}
	g.verbosef(1, "loading index\n")
	if err := r.LoadIndex(ctx); err != nil {
		release()
		return nil, nil, err
	}
	return r, release, nil
}

// openOneSnapshot is openForBrowsing for commands that read one snapshot
// (ls, dump): spec is an ID or "latest".
func (g *globalOptions) openOneSnapshot(ctx context.Context, spec string, f snapshot.Filter) (*repo.Repository, *snapshot.Snapshot, func(), error) {
	var sn *snapshot.Snapshot
	r, done, err := g.openForBrowsing(ctx, func(r *repo.Repository) (err error) {
		sn, err = browseSnapshot(ctx, r, spec, f)
		return err
	})
	return r, sn, done, err
}

// openForBrowsing opens the repository for the read-only browse commands
// (ls, find, dump, diff, stats) with a shared lock, runs resolve, which
// reads the snapshot files the command needs, and only then loads the
// index: design.rst's read order, so that every blob a snapshot found
// needs is in the index read after it. The returned function releases the
// lock and the repository.
//
// Over a network most of the time before the first byte of data is round
// trips: the snapshot and index listings go out while the key is derived,
// and the lock file is written and checked while the snapshot and the
// index are read (a lock taken ahead). Nothing read is acted on before the
// lock is confirmed; if a prune replaced the index meanwhile, the snapshot
// and the index are read once more, from listings taken under the lock.
func (g *globalOptions) openForBrowsing(ctx context.Context, resolve func(*repo.Repository) error) (*repo.Repository, func(), error) {
	g.prefetch = true
	r, done, err := g.openLocked(ctx, false)
	g.prefetch = false // not for another open by the same command
	if err != nil {
		return nil, nil, err
	}
	load := func() error {
		if err := resolve(r); err != nil {
			return err
		}
		if err := r.LoadIndex(ctx); err != nil {
			return err
		}
		return r.AwaitLocks(ctx)
	}
	err = load()
	if errors.Is(err, repo.ErrIndexChanged) {
		g.verbosef(1, "the index was replaced meanwhile: reading it again\n")
		err = load()
	}
	if err != nil {
		done()
		return nil, nil, err
	}
	return r, done, nil
}

// browseSnapshot resolves SNAPSHOT (an ID prefix or "latest").
func browseSnapshot(ctx context.Context, r *repo.Repository, spec string, f snapshot.Filter) (*snapshot.Snapshot, error) {
	sn, err := snapshot.FindSnapshot(ctx, r, spec, f)
	if errors.Is(err, snapshot.ErrNoSnapshot) && spec == "latest" {
		return nil, fmt.Errorf("no snapshot for \"latest\": %w", err)
	}
	return sn, err
}

// namedOrAllSnapshots returns the snapshots named by specs (IDs, prefixes
// or "latest", in that order; any that cannot be found is an error) or,
// when none is named, every snapshot that passes f, oldest first, with the
// unreadable ones named through dl and skipped.
func namedOrAllSnapshots(ctx context.Context, r *repo.Repository, specs []string, f snapshot.Filter, dl *damageLog) ([]*snapshot.Snapshot, error) {
	if len(specs) == 0 {
		return snapshot.ListSnapshots(ctx, r, f, dl.snapshot)
	}
	sns := make([]*snapshot.Snapshot, 0, len(specs))
	for _, spec := range specs {
		sn, err := browseSnapshot(ctx, r, spec, f)
		if err != nil {
			return nil, err
		}
		sns = append(sns, sn)
	}
	return sns, nil
}

// damageLog names on stderr what a command could not read and skipped --
// snapshot files, damaged trees, unusable entries -- and counts it, so
// that the command, having done everything else, exits 1.
type damageLog struct {
	g                *globalOptions
	mu               sync.Mutex
	snapshots, items int
}

// snapshot reports a snapshot file that could not be read (ListSnapshots'
// warn).
func (d *damageLog) snapshot(err error) {
	d.mu.Lock()
	d.snapshots++
	d.mu.Unlock()
	d.g.warnf("warning: %s; skipped\n", escapeName(err.Error()))
}

// item reports a damaged item at path p (a snapshot.DamagedFunc); in
// names the snapshot, if the command looks at several.
func (d *damageLog) item(in *snapshot.Snapshot, p string, err error) error {
	d.mu.Lock()
	d.items++
	d.mu.Unlock()
	where := ""
	if in != nil {
		where = "snapshot " + in.ID.Str() + ": "
	}
	d.g.warnf("error: %s%s: %s; skipped\n", where, escapeName(p), escapeName(err.Error()))
	return nil
}

// damaged is item for commands that look at one snapshot.
func (d *damageLog) damaged(p string, err error) error { return d.item(nil, p, err) }

// result is the command's error: err, or when something was skipped an
// exit-1 error saying so (the rest of the output is complete).
func (d *damageLog) result(err error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil || d.snapshots+d.items == 0 {
		return err
	}
	var msg string
	switch {
	case d.items == 0:
		msg = fmt.Sprintf("%s could not be read and %s left out (named above); run `cairn check`, then `cairn forget` the damaged ones",
			plural(d.snapshots, "snapshot file"), pronoun(d.snapshots))
	case d.snapshots == 0:
		msg = fmt.Sprintf("%s %s left out (named above); run `cairn check` to see all damage",
			plural(d.items, "damaged item"), pronoun(d.items))
	default:
		msg = fmt.Sprintf("%s and %s could not be read and were left out (named above); run `cairn check` to see all damage",
			plural(d.snapshots, "snapshot file"), plural(d.items, "damaged item"))
	}
	return &exitError{code: exitFailure, err: errors.New(msg)}
}

func pronoun(n int) string {
	if n == 1 {
		return "was"
	}
	return "were"
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// escapeName makes s safe to print on a terminal: a string with control
// characters, other unprintable runes (such as bidi overrides) or invalid
// UTF-8 is printed Go-quoted ("a\x1b[2Jb"), anything else as it is.
func escapeName(s string) string {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
		i += size
	}
	return s
}

// resultWriter buffers a browse command's results on stdout; they are the
// point of the command, so -q does not hide them.
type resultWriter struct {
	*bufio.Writer
	err error
}

func newResultWriter(w io.Writer) *resultWriter {
	return &resultWriter{Writer: bufio.NewWriterSize(w, 64<<10)}
}

func (w *resultWriter) line(format string, args ...any) {
	if w.err == nil {
		_, w.err = fmt.Fprintf(w, format+"\n", args...)
	}
}

func (w *resultWriter) json(v any) {
	if w.err != nil {
		return
	}
	buf, err := json.Marshal(v)
	if err != nil {
		w.err = err
		return
	}
	buf = append(buf, '\n')
	_, w.err = w.Write(buf)
}

func (w *resultWriter) finish() error {
	if w.err != nil {
		return fmt.Errorf("write output: %w", w.err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
