package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
)

// openForBrowsing opens the repository for the read-only browse commands
// (ls, find, dump, diff, stats): a shared lock and the loaded index. The
// returned function releases both.
func (g *globalOptions) openForBrowsing(ctx context.Context) (*repo.Repository, func(), error) {
	r, done, err := g.openLocked(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	if err := r.LoadIndex(ctx); err != nil {
		done()
		return nil, nil, err
	}
	return r, done, nil
}

// browseSnapshot resolves SNAPSHOT (an ID prefix or "latest").
func browseSnapshot(ctx context.Context, r *repo.Repository, spec string, f snapshot.Filter) (*snapshot.Snapshot, error) {
	sn, err := snapshot.FindSnapshot(ctx, r, spec, f)
	if err != nil && spec == "latest" {
		return nil, fmt.Errorf("no snapshot for \"latest\": %w", err)
	}
	return sn, err
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

// snapshotLsJSON is the first line of `ls --json`, as restic prints it.
type snapshotLsJSON struct {
	Time       time.Time `json:"time"`
	Tree       repo.ID   `json:"tree"`
	Paths      []string  `json:"paths"`
	Hostname   string    `json:"hostname,omitempty"`
	Username   string    `json:"username,omitempty"`
	Tags       []string  `json:"tags,omitempty"`
	ID         string    `json:"id"`
	ShortID    string    `json:"short_id"`
	StructType string    `json:"struct_type"`
}

func newLsCmd(g *globalOptions) *cobra.Command {
	var long, recursive bool
	var filt snapshotFilterFlags
	cmd := &cobra.Command{
		Use:   "ls [flags] SNAPSHOT [PATH]",
		Short: "List files in a snapshot",
		Long: `List the entries of a directory in a snapshot (default: its root).

SNAPSHOT is an ID (or a unique prefix) or "latest" (the newest snapshot that
passes --host, --tag and --path). With --recursive everything below the
directory is listed; with -l in the long format of ls -l; with --json one
JSON object per line (the first describes the snapshot).`,
		Args: rangeArgs(1, 2, "a snapshot (ID or latest) and optionally a path in it"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, done, err := g.openForBrowsing(ctx)
			if err != nil {
				return err
			}
			defer done()
			sn, err := browseSnapshot(ctx, r, args[0], filt.filter())
			if err != nil {
				return err
			}
			dir := "/"
			if len(args) == 2 {
				dir = args[1]
			}
			out := newResultWriter(g.env.stdout)
			if g.json {
				out.json(snapshotLsJSON{Time: sn.Time, Tree: *sn.Tree, Paths: sn.Paths, Hostname: sn.Hostname,
					Username: sn.Username, Tags: sn.Tags, ID: sn.ID.String(), ShortID: sn.ID.Str(), StructType: "snapshot"})
			}
			loader := snapshot.NewTreeLoader(r, 1024)
			err = snapshot.Ls(ctx, loader, *sn.Tree, dir, recursive, func(p string, n *snapshot.Node) error {
				switch {
				case g.json:
					out.json(snapshot.NewLsJSON(p, n))
				case long:
					out.line("%s", snapshot.FormatLong(p, n))
				default:
					out.line("%s", p)
				}
				return out.err
			})
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", sn.ID.Str(), err)
			}
			return out.finish()
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "use the long format: mode, owner, group, size, mtime, path")
	cmd.Flags().BoolVar(&recursive, "recursive", false, "list everything below the directory")
	filt.add(cmd.Flags(), " for \"latest\"")
	return cmd
}
