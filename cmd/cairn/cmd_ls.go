package main

import (
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"
	"github.com/spf13/cobra"
)

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
		Long: `List the files in a snapshot: without PATH everything in it (as restic
ls does), with PATH the entries of that directory (everything below it with
--recursive).

SNAPSHOT is an ID (or a unique prefix) or "latest" (the newest snapshot that
passes --host, --tag and --path). With -l the long format of ls -l is used;
with --json one JSON object per line (the first describes the snapshot).
On a terminal, names with control characters are printed quoted; piped
output and --json hold the names exactly. A directory that cannot be read
is named on stderr and skipped; the rest is listed and ls exits 1.`,
		Args: rangeArgs(1, 2, "a snapshot (ID or latest) and optionally a path in it"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, sn, done, err := g.openOneSnapshot(ctx, args[0], filt.filter())
			if err != nil {
				return err
			}
			defer done()
			dir, rec := "/", true // restic lists a whole snapshot
			if len(args) == 2 {
				dir, rec = args[1], recursive
			}
			esc := func(s string) string { return s }
			if isTerminal(g.env.stdout) {
				esc = escapeName
			}
			dl := &damageLog{g: g}
			out := newResultWriter(g.env.stdout)
			if g.json {
				out.json(snapshotLsJSON{Time: sn.Time, Tree: *sn.Tree, Paths: sn.Paths, Hostname: sn.Hostname,
					Username: sn.Username, Tags: sn.Tags, ID: sn.ID.String(), ShortID: sn.ID.Str(), StructType: "snapshot"})
			}
			loader := snapshot.NewTreeLoader(r, 1024)
			err = browse.Ls(ctx, loader, *sn.Tree, dir, rec, func(p string, n *snapshot.Node) error {
				switch {
				case g.json:
					out.json(browse.NewLsJSON(p, n))
				case long:
					out.line("%s", browse.FormatLong(p, n, esc))
				default:
					out.line("%s", esc(p))
				}
				return out.err
			}, func(p string, err error) error {
				// Flush first, so that on a terminal the message sits
				// where the item would have been listed.
				if out.err == nil {
					out.err = out.Flush()
				}
				return dl.damaged(p, err)
			})
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", sn.ID.Str(), err)
			}
			return dl.result(out.finish())
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "use the long format: mode, owner, group, size, mtime, path")
	cmd.Flags().BoolVar(&recursive, "recursive", false, "list everything below PATH (without PATH, everything is listed anyway)")
	filt.add(cmd.Flags(), " for \"latest\"")
	return cmd
}
