package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"
	"github.com/spf13/cobra"
)

type findFlags struct {
	snapshots      []string
	oldest, newest string
	ignoreCase     bool
	blob, tree     bool
	long           bool
	filter         snapshotFilterFlags
}

// findMatchJSON is one match of `find --json`: the node (as ls prints
// it) and, for --blob and --tree, the ID that matched.
type findMatchJSON struct {
	browse.LsJSON
	ID string `json:"id,omitempty"`
}

type findResultJSON struct {
	Snapshot string          `json:"snapshot"`
	ShortID  string          `json:"short_id"`
	Time     time.Time       `json:"time"`
	Hits     int             `json:"hits"`
	Matches  []findMatchJSON `json:"matches"`
}

func newFindCmd(g *globalOptions) *cobra.Command {
	var f findFlags
	cmd := &cobra.Command{
		Use:   "find [flags] PATTERN...",
		Short: "Find files in snapshots",
		Long: `Find files and directories in snapshots, newest snapshot first.

A PATTERN is a glob (*, ?, [...]). One without "/" is matched against the
base name; one with "/" against the path (a pattern that does not start with
"/" may match any trailing part of it). With --blob or --tree the arguments
are (prefixes of) blob or tree IDs, and find lists the files that use them.
Times for --oldest/--newest: "2006-01-02", "2006-01-02 15:04[:05]" or RFC 3339.

A snapshot or directory that cannot be read is named on stderr and skipped;
find searches all the rest and then exits 1. On a terminal, names with
control characters are printed quoted; piped output and --json are exact.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("find expects at least one pattern (or ID with --blob/--tree)")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFind(cmd.Context(), g, &f, args)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVarP(&f.snapshots, "snapshot", "s", nil, "search only this snapshot `ID` (or latest; can be repeated)")
	fs.StringVarP(&f.oldest, "oldest", "O", "", "only match nodes modified at or after `time`")
	fs.StringVarP(&f.newest, "newest", "N", "", "only match nodes modified at or before `time`")
	fs.BoolVarP(&f.ignoreCase, "ignore-case", "i", false, "ignore case in patterns")
	fs.BoolVar(&f.blob, "blob", false, "the arguments are data blob IDs (or prefixes): find the files that use them")
	fs.BoolVar(&f.tree, "tree", false, "the arguments are tree IDs (or prefixes): find the directories that are them")
	fs.BoolVarP(&f.long, "long", "l", false, "use the long format of ls -l")
	f.filter.add(fs, "")
	return cmd
}

// runFind searches the snapshots for the patterns (or blob/tree IDs) in args.
func runFind(ctx context.Context, g *globalOptions, f *findFlags, args []string) error {
	if f.blob && f.tree {
		return errors.New("find: give --blob or --tree, not both")
	}
	opts := browse.FindOptions{IgnoreCase: f.ignoreCase}
	switch {
	case f.blob:
		opts.BlobIDs = args
	case f.tree:
		opts.TreeIDs = args
	default:
		opts.Patterns = args
	}
	var err error
	if opts.Oldest, err = parseFindTime("--oldest", f.oldest); err != nil {
		return err
	}
	if opts.Newest, err = parseFindTime("--newest", f.newest); err != nil {
		return err
	}
	dl := &damageLog{g: g}
	var sns []*snapshot.Snapshot
	r, done, err := g.openForBrowsing(ctx, func(r *repo.Repository) (err error) {
		sns, err = namedOrAllSnapshots(ctx, r, f.snapshots, f.filter.filter(), dl)
		return err
	})
	if err != nil {
		return err
	}
	defer done()
	esc := func(s string) string { return s }
	if isTerminal(g.env.stdout) {
		esc = escapeName
	}
	out := newResultWriter(g.env.stdout)
	var results []findResultJSON
	groups := 0
	opts.Damaged = func(sn *snapshot.Snapshot, p string, err error) error {
		if out.err == nil {
			out.err = out.Flush()
		}
		return dl.item(sn, p, err)
	}
	err = browse.Find(ctx, snapshot.NewTreeLoader(r, 4096), sns, opts, func(res *browse.FindResult) error {
		sn := res.Snapshot
		if g.json {
			jr := findResultJSON{Snapshot: sn.ID.String(), ShortID: sn.ID.Str(), Time: sn.Time, Hits: len(res.Matches)}
			for _, m := range res.Matches {
				jm := findMatchJSON{LsJSON: browse.NewLsJSON(m.Path, m.Node)}
				if !m.ID.IsNull() {
					jm.ID = m.ID.String()
				}
				jr.Matches = append(jr.Matches, jm)
			}
			results = append(results, jr)
			return nil
		}
		if groups++; groups > 1 {
			out.line("")
		}
		out.line("Found matching entries in snapshot %s from %s", sn.ID.Str(), sn.Time.Local().Format(browse.LsTimeFormat))
		for _, m := range res.Matches {
			line := esc(m.Path)
			if f.long {
				line = browse.FormatLong(m.Path, m.Node, esc)
			}
			if !m.ID.IsNull() {
				kind := "tree"
				if f.blob {
					kind = "blob"
				}
				line += fmt.Sprintf(" (%s %s)", kind, m.ID.Str())
			}
			out.line("%s", line)
		}
		return out.err
	})
	if err != nil {
		return err
	}
	if g.json {
		if results == nil {
			results = []findResultJSON{}
		}
		out.json(results)
	}
	return dl.result(out.finish())
}

// parseFindTime reads a local time in one of a few layouts; "" is no
// bound.
func parseFindTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%s %q: not a time; use 2006-01-02, \"2006-01-02 15:04:05\" or RFC 3339", flag, s)
}
