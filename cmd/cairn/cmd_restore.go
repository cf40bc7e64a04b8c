package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/restorer"
	"github.com/spf13/cobra"
)

type restoreFlags struct {
	target              string
	includes, iincludes []string
	excludes, iexcludes []string
	verify              bool
	filter              snapshotFilterFlags
}

func newRestoreCmd(g *globalOptions) *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT[:SUBPATH] --target DIR",
		Short: "Restore a snapshot (or a directory of it) into a directory",
		Long: `Restore a snapshot into the target directory.

SNAPSHOT is an ID (or a unique prefix) or "latest" (the newest snapshot that
passes --host, --tag and --path). With :SUBPATH only that directory of the
snapshot is restored, its contents placed directly in the target.`,
		Args: exactArgs(1, "one snapshot: ID, ID:SUBPATH, latest or latest:SUBPATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRestore(cmd.Context(), g, &f, args[0])
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.target, "target", "t", "", "restore into `directory` (required)")
	fs.StringArrayVarP(&f.includes, "include", "i", nil, "restore only paths matching `pattern` (can be repeated)")
	fs.StringArrayVar(&f.iincludes, "iinclude", nil, "restore only paths matching `pattern`, ignoring case (can be repeated)")
	fs.StringArrayVarP(&f.excludes, "exclude", "e", nil, "do not restore paths matching `pattern` (can be repeated)")
	fs.StringArrayVar(&f.iexcludes, "iexclude", nil, "do not restore paths matching `pattern`, ignoring case (can be repeated)")
	fs.BoolVar(&f.verify, "verify", false, "read the restored files back and compare them with the snapshot")
	f.filter.add(fs, " for \"latest\"")
	return cmd
}

func runRestore(ctx context.Context, g *globalOptions, f *restoreFlags, spec string) error {
	if f.target == "" {
		return errors.New("restore needs a target directory: give --target DIR")
	}
	snapSpec, subpath, _ := strings.Cut(spec, ":")
	if snapSpec == "" {
		return fmt.Errorf("%q names no snapshot: use ID[:SUBPATH] or latest[:SUBPATH]", spec)
	}
	include, err := buildMatcher("include", f.includes, f.iincludes)
	if err != nil {
		return err
	}
	exclude, err := buildMatcher("exclude", f.excludes, f.iexcludes)
	if err != nil {
		return err
	}
	var sn *snapshot.Snapshot
	r, release, err := g.openForBrowsing(ctx, func(r *repo.Repository) (err error) {
		sn, err = snapshot.FindSnapshot(ctx, r, snapSpec, f.filter.filter())
		return err
	})
	if err != nil {
		return err
	}
	defer release()
	from := ""
	if subpath != "" {
		from = " (" + subpath + ")"
	}
	g.printf("restoring snapshot %s%s of %v at %s to %s\n", sn.ID.Str(), from, sn.Paths,
		sn.Time.Local().Format("2006-01-02 15:04:05"), f.target)

	progress := &snapshot.Progress{}
	opts := restorer.RestoreOptions{
		Target:   f.target,
		Include:  include,
		Exclude:  exclude,
		Verify:   f.verify,
		Progress: progress,
		OnError: func(path string, err error) {
			g.warnf("error: %s: %v\n", path, err)
		},
	}
	start := time.Now()
	stop := g.startProgress(progress, "files")
	failed, err := restorer.Restore(ctx, r, sn, subpath, opts)
	stop()
	if err != nil {
		return err
	}
	took := time.Since(start)
	if g.json {
		if err := g.printJSON(map[string]any{
			"message_type":   "summary",
			"snapshot_id":    sn.ID.String(),
			"files_restored": progress.Files.Load(),
			"dirs_restored":  progress.Dirs.Load(),
			"bytes_restored": progress.Bytes.Load(),
			"errors":         failed,
			"total_duration": took.Seconds(),
		}, false); err != nil {
			return err
		}
	} else {
		g.printf("restored %d files, %d dirs, %s in %s\n", progress.Files.Load(), progress.Dirs.Load(),
			formatBytes(progress.Bytes.Load()), formatDuration(took))
		if f.verify && failed == 0 {
			g.printf("verified the restored files: no differences\n")
		}
	}
	if failed > 0 {
		return fmt.Errorf("%s could not be restored (listed above as \"error:\")", plural(failed, "item"))
	}
	return nil
}
