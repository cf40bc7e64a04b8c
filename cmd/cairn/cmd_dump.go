package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"
	"github.com/spf13/cobra"
)

func newDumpCmd(g *globalOptions) *cobra.Command {
	var archive, target string
	var filt snapshotFilterFlags
	cmd := &cobra.Command{
		Use:   "dump [flags] SNAPSHOT PATH",
		Short: "Write a file, or a directory as an archive, from a snapshot",
		Long: `Write the file at PATH in the snapshot to stdout (or --target FILE).

A directory (or any other non-file) is written as a tar or zip archive whose
entries are named relative to the directory's parent, as
"tar -c -C parent dir" names them. "/" dumps the whole snapshot.
SNAPSHOT is an ID (or a unique prefix) or "latest".

No entry name leads out of the directory the archive is extracted in,
whatever names the snapshot holds: entries with names no file system has
("..", "a/b", repeated names) and directories that cannot be read are left
out and named on stderr; the rest is written and dump exits 1.`,
		Args: exactArgs(2, "a snapshot (ID or latest) and a path in it"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if archive != browse.ArchiveTar && archive != browse.ArchiveZip {
				return fmt.Errorf("--archive %q is unknown: use tar or zip", archive)
			}
			r, sn, done, err := g.openOneSnapshot(ctx, args[0], filt.filter())
			if err != nil {
				return err
			}
			defer done()
			loader := snapshot.NewTreeLoader(r, 1024)
			// Fail on a bad path before creating the target file.
			if _, err := snapshot.FindNode(ctx, loader, *sn.Tree, args[1]); err != nil {
				return fmt.Errorf("snapshot %s: %w", sn.ID.Str(), err)
			}
			var w io.Writer = g.env.stdout
			var file *os.File
			if target != "" {
				if file, err = os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
					return fmt.Errorf("dump: %w", err)
				}
				w = file
			}
			bw := bufio.NewWriterSize(w, 1<<20)
			cache := browse.NewBlobCache(r, 0)
			dl := &damageLog{g: g}
			err = browse.Dump(ctx, loader, cache, *sn.Tree, args[1], archive, bw, dl.damaged)
			if err == nil {
				err = bw.Flush()
			}
			if file != nil {
				if cerr := file.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					os.Remove(target) // do not leave half an archive behind
				}
			}
			if err != nil {
				if errors.Is(err, snapshot.ErrPathNotFound) {
					return fmt.Errorf("snapshot %s: %w", sn.ID.Str(), err)
				}
				return fmt.Errorf("dump %s from snapshot %s: %w", args[1], sn.ID.Str(), err)
			}
			return dl.result(nil)
		},
	}
	cmd.Flags().StringVarP(&archive, "archive", "a", browse.ArchiveTar, "archive `format` for directories: tar or zip")
	cmd.Flags().StringVarP(&target, "target", "t", "", "write to `file` instead of stdout")
	filt.add(cmd.Flags(), " for \"latest\"")
	return cmd
}
