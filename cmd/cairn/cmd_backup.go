package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/spf13/cobra"
)

type backupFlags struct {
	tags          []string
	host          string
	timeStr       string
	excludes      []string
	iexcludes     []string
	excludeFiles  []string
	iexcludeFiles []string
	filesFrom     []string
	parent        string
	force         bool
	ttl           string
	stream        stdinFlags
}

func newBackupCmd(g *globalOptions) *cobra.Command {
	var f backupFlags
	cmd := &cobra.Command{
		Use:   "backup [flags] PATH... | --stdin | --stdin-from-command -- CMD ARGS...",
		Short: "Save files and directories in a new snapshot",
		Long: `Save files and directories in a new snapshot.

Without --parent, the newest snapshot of the same host and the same paths is
the parent: files whose metadata did not change since are not read again.
The exit code is 3 when the snapshot was saved but some items could not be
read; each of them is reported on stderr.

--stdin saves standard input, and --stdin-from-command the standard output
of the command given after --, as one file named by --stdin-filename
(default "stdin"; a slash path makes directories), in a snapshot whose path
is that file, as restic does: e.g. a database dump with
  cairn backup --stdin-from-command --stdin-filename db.sql -- pg_dump app
If the command exits non-zero, no snapshot is saved.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBackup(cmd.Context(), g, &f, args)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&f.tags, "tag", nil, "add `tags` to the snapshot (\"a,b\" adds two; can be repeated)")
	fs.StringVarP(&f.host, "host", "H", "", "record `hostname` instead of this machine's name (default $CAIRN_HOST)")
	fs.StringVar(&f.timeStr, "time", "", "record `time` (\"2006-01-02 15:04:05\", local time) instead of now")
	fs.StringArrayVarP(&f.excludes, "exclude", "e", nil, "exclude paths matching `pattern` (can be repeated)")
	fs.StringArrayVar(&f.iexcludes, "iexclude", nil, "exclude paths matching `pattern`, ignoring case (can be repeated)")
	fs.StringArrayVar(&f.excludeFiles, "exclude-file", nil, "read exclude patterns from `file` (can be repeated)")
	fs.StringArrayVar(&f.iexcludeFiles, "iexclude-file", nil, "read case-insensitive exclude patterns from `file` (can be repeated)")
	fs.StringArrayVar(&f.filesFrom, "files-from", nil, "read paths to back up from `file`, one per line (can be repeated)")
	fs.StringVar(&f.parent, "parent", "", "use snapshot `ID` as the parent instead of the newest matching one")
	fs.BoolVarP(&f.force, "force", "f", false, "use no parent: read every file again")
	fs.BoolVar(&f.stream.stdin, "stdin", false, "save standard input as one file (see --stdin-filename)")
	fs.BoolVar(&f.stream.fromCommand, "stdin-from-command", false, "save the standard output of the command given as the arguments (after --) as one file; a failing command saves nothing")
	fs.StringVar(&f.stream.filename, "stdin-filename", "stdin", "`name` of the file --stdin or --stdin-from-command saves (a slash path makes directories)")
	fs.StringVar(&f.ttl, "ttl", "", "let the snapshot expire after `duration` (\"720h\", \"30d\", \"1d12h\"; 0 = never): `forget --expired` removes it then")
	return cmd
}

func runBackup(ctx context.Context, g *globalOptions, f *backupFlags, args []string) error {
	if err := g.declareWrite("backup", appendLock); err != nil {
		return err
	}
	if f.force && f.parent != "" {
		return errors.New("--force and --parent contradict each other: give one of them")
	}
	var paths []string
	var err error
	if f.stream.used() {
		if err := f.stream.check(args, f.filesFrom, g); err != nil {
			return err
		}
	} else if paths, err = backupPaths(args, f.filesFrom); err != nil {
		return err
	}
	excl, iexcl := slices.Clone(f.excludes), slices.Clone(f.iexcludes)
	for _, name := range f.excludeFiles {
		pats, err := readPatternFile(name, true)
		if err != nil {
			return fmt.Errorf("--exclude-file: %w", err)
		}
		excl = append(excl, pats...)
	}
	for _, name := range f.iexcludeFiles {
		pats, err := readPatternFile(name, true)
		if err != nil {
			return fmt.Errorf("--iexclude-file: %w", err)
		}
		iexcl = append(iexcl, pats...)
	}
	matcher, err := buildMatcher("exclude", excl, iexcl)
	if err != nil {
		return err
	}
	when, tags, host, err := f.meta(g)
	if err != nil {
		return err
	}
	if f.stream.used() {
		return backupStream(ctx, g, f.stream.filename, f.stream.source(g, args), archiver.ArchiveOptions{
			Tags: tags, Hostname: host, Time: when, ProgramVersion: "cairn " + version, Progress: &snapshot.Progress{},
		})
	}
	r, release, err := g.openWithIndex(ctx)
	if err != nil {
		return err
	}
	defer release()
	parent, err := findParent(ctx, g, r, f, host, paths, when)
	if err != nil {
		return err
	}
	if parent != nil {
		g.printf("using parent snapshot %s\n", parent.ID.Str())
	} else {
		g.printf("no parent snapshot found, will read all files\n")
	}

	progress := &snapshot.Progress{}
	opts := archiver.ArchiveOptions{
		Excludes:        matcher,
		ExcludePatterns: append(excl, iexcl...),
		Parent:          parent,
		Tags:            tags,
		Hostname:        host,
		Time:            when,
		ProgramVersion:  "cairn " + version,
		Progress:        progress,
		OnError: func(path string, err error) {
			g.warnf("error: %s: %v\n", path, err)
		},
		OnChanged: func(path string, err error) {
			g.warnf("warning: %s: %v\n", path, err)
		},
	}
	start := time.Now()
	stop := g.startProgress(progress, "files")
	opts.NoScan = !g.progressShown() // nobody sees the totals
	a := archiver.NewArchiver(r, opts)
	sn, err := a.BackupPaths(ctx, paths)
	stop()
	if err != nil {
		return err
	}
	printBackupSummary(g, sn, time.Since(start))
	return partialBackupError(sn, a.ErrorCount(), a.ChangedCount())
}

// meta says the time, tags and host of the snapshot to make.
func (f *backupFlags) meta(g *globalOptions) (when time.Time, tags []string, host string, err error) {
	when = time.Now()
	if f.timeStr != "" {
		if when, err = time.ParseInLocation("2006-01-02 15:04:05", f.timeStr, time.Local); err != nil {
			return when, nil, "", fmt.Errorf("--time %q: use the form \"2006-01-02 15:04:05\"", f.timeStr)
		}
	}
	tags = splitTags(f.tags)
	if f.ttl != "" {
		ttl, err := retention.ParseTTL(f.ttl)
		if err != nil {
			return when, nil, "", fmt.Errorf("--ttl: %w", err)
		}
		if ttl > 0 { // "0": never expires
			tags = append(tags, retention.ExpiryTag(when.Add(ttl)))
		}
	}
	host = f.host
	if host == "" {
		host = g.env.getenv("CAIRN_HOST")
	}
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return when, nil, "", fmt.Errorf("cannot determine the host name (%v): give --host", err)
		}
	}

	return when, tags, host, nil
}

// partialBackupError is exit code 3 when items could not be read or files
// changed while they were read, naming both counts.
func partialBackupError(sn *snapshot.Snapshot, unreadable, changed int) error {
	var what []string
	if unreadable > 0 {
		what = append(what, fmt.Sprintf("%s could not be read (listed above as \"error:\"); they are missing from it", plural(unreadable, "item")))
	}
	if changed > 0 {
		what = append(what, fmt.Sprintf("%s changed while being read (listed above as \"warning:\"); what was read is stored and may be inconsistent, back them up again when they are quiet",
			plural(changed, "file")))
	}
	if len(what) == 0 {
		return nil
	}
	return &exitError{code: exitPartial, err: fmt.Errorf("snapshot %s saved, but %s", sn.ID.Str(), strings.Join(what, "; and "))}
}

// backupPaths collects the paths to save, made absolute and clean as the
// snapshot records them.
func backupPaths(args, filesFrom []string) ([]string, error) {
	raw := slices.Clone(args)
	for _, name := range filesFrom {
		lines, err := readPatternFile(name, false)
		if err != nil {
			return nil, fmt.Errorf("--files-from: %w", err)
		}
		for _, l := range lines {
			matches, err := filepath.Glob(l)
			if err != nil || len(matches) == 0 {
				raw = append(raw, l) // not a glob, or nothing there: the archiver reports it
				continue
			}
			raw = append(raw, matches...)
		}
	}
	if len(raw) == 0 {
		return nil, errors.New("nothing to back up: give at least one path (or --files-from FILE)")
	}
	var paths []string
	for _, p := range raw {
		abs := cleanAbs(p)
		if !slices.Contains(paths, abs) {
			paths = append(paths, abs)
		}
	}
	return paths, nil
}

func splitTags(lists []string) []string {
	var tags []string
	for _, l := range lists {
		for _, t := range strings.Split(l, ",") {
			if t = strings.TrimSpace(t); t != "" && !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
	}
	return tags
}

// findParent picks the parent snapshot: --parent, or the newest snapshot
// of the same host with the same set of paths that is not newer than the
// backup's time.
func findParent(ctx context.Context, g *globalOptions, r *repo.Repository, f *backupFlags, host string, paths []string, when time.Time) (*snapshot.Snapshot, error) {
	if f.force {
		return nil, nil
	}
	if f.parent != "" {
		sn, err := snapshot.FindSnapshot(ctx, r, f.parent, snapshot.Filter{})
		if err != nil {
			return nil, fmt.Errorf("--parent: %w", err)
		}
		return sn, nil
	}
	warn := func(err error) { g.warnf("warning: %v\n", err) }
	sns, err := snapshot.ListSnapshots(ctx, r, snapshot.Filter{Hosts: []string{host}}, warn)
	if err != nil {
		return nil, err
	}
	want := slices.Sorted(slices.Values(paths))
	for i := len(sns) - 1; i >= 0; i-- {
		sn := sns[i]
		if sn.Time.After(when) {
			continue
		}
		if slices.Equal(slices.Sorted(slices.Values(sn.Paths)), want) {
			return sn, nil
		}
	}
	return nil, nil
}

// backupSummaryJSON is the --json summary; the names are restic's.
type backupSummaryJSON struct {
	MessageType string `json:"message_type"`
	snapshot.Summary
	TotalDuration float64 `json:"total_duration"`
	SnapshotID    string  `json:"snapshot_id"`
}

func printBackupSummary(g *globalOptions, sn *snapshot.Snapshot, took time.Duration) {
	s := snapshot.Summary{}
	if sn.Summary != nil {
		s = *sn.Summary
	}
	if g.json {
		_ = g.printJSON(backupSummaryJSON{
			MessageType:   "summary",
			Summary:       s,
			TotalDuration: took.Seconds(),
			SnapshotID:    sn.ID.String(),
		}, false)
		return
	}
	g.printf("\nFiles:       %5d new, %5d changed, %5d unmodified\n", s.FilesNew, s.FilesChanged, s.FilesUnmodified)
	g.printf("Dirs:        %5d new, %5d changed, %5d unmodified\n", s.DirsNew, s.DirsChanged, s.DirsUnmodified)
	if s.DataAddedPacked > 0 {
		g.printf("Added to the repository: %s (%s stored)\n\n", formatBytes(s.DataAdded), formatBytes(s.DataAddedPacked))
	} else {
		g.printf("Added to the repository: %s\n\n", formatBytes(s.DataAdded))
	}
	g.printf("processed %d files, %s in %s\n", s.TotalFilesProcessed, formatBytes(s.TotalBytesProcessed), formatDuration(took))
	g.printf("snapshot %s saved\n", sn.ID.Str())
}

// plural formats a count with a noun: "1 item", "2 items".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
