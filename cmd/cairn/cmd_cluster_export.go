package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/browse"
	"github.com/cairn-backup/cairn/snapshot/restorer"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func init() { clusterSubcommands = append(clusterSubcommands, newClusterExportVolumeCmd) }

type exportVolumeFlags struct {
	pvc, volume string
	target      string
	archive     string
	force       bool
	verify      bool
}

func newClusterExportVolumeCmd(g *globalOptions, _ *clusterOptions) *cobra.Command {
	var f exportVolumeFlags
	cmd := &cobra.Command{
		Use:   "export-volume BACKUP (--pvc NS/CLAIM | NS/POD/VOLUME) (--target DIR | --archive tar)",
		Short: "Write one volume's files from a cluster backup to a directory or a tar stream",
		Long: `Take the files of one pod volume out of a cluster backup, with no cluster:
the way to move a volume's data off Kubernetes, onto a VM or a laptop.

The volume is named by its claim (--pvc NAMESPACE/CLAIM) or by the pod and
volume it was mounted as (NAMESPACE/POD/VOLUME, as an argument or --volume);
` + "`cairn cluster describe BACKUP`" + ` lists a backup's volumes.

With --target DIR the volume's files are restored into DIR as ` + "`cairn restore`" + `
does (modes, owners, times, extended attributes); DIR must be empty or new
unless --force is given, which writes over the files there. With --archive
tar (or zip) the volume is written to standard output as an archive whose
entries are named relative to the volume's root, so that

  cairn cluster export-volume BACKUP --pvc shop/data --archive tar | ssh vm tar x -C /srv

puts the claim's files directly into /srv. No entry name leads out of the
directory the archive is extracted in.`,
		Args: rangeArgs(1, 2, "a backup name, and optionally NAMESPACE/POD/VOLUME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExportVolume(cmd.Context(), g, &f, args)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.pvc, "pvc", "", "the volume of the claim `NAMESPACE/CLAIM`")
	fs.StringVar(&f.volume, "volume", "", "the volume `NAMESPACE/POD/VOLUME` (a pod's volume by its name in the pod spec)")
	fs.StringVarP(&f.target, "target", "t", "", "restore the volume's files into `directory`")
	fs.StringVarP(&f.archive, "archive", "a", "", "write the volume to standard output as an archive of `format` tar or zip")
	fs.BoolVar(&f.force, "force", false, "restore into a target directory that is not empty, over the files there")
	fs.BoolVar(&f.verify, "verify", false, "read the restored files back and compare them with the backup (with --target)")
	return cmd
}

// volumeRef reads which volume the flags and arguments name: exactly one
// of --pvc, --volume and the second argument.
func (f *exportVolumeFlags) volumeRef(args []string) (catalog.VolumeRef, error) {
	given := 0
	for _, s := range []string{f.pvc, f.volume} {
		if s != "" {
			given++
		}
	}
	if len(args) > 1 {
		given++
	}
	if given != 1 {
		return catalog.VolumeRef{}, errors.New("name one volume: --pvc NAMESPACE/CLAIM, or NAMESPACE/POD/VOLUME (as an argument or --volume)")
	}
	switch {
	case f.pvc != "":
		ref, err := catalog.ParseVolumeRef(f.pvc)
		if err == nil && ref.PVC == "" {
			err = fmt.Errorf("--pvc %q: give NAMESPACE/CLAIM (NAMESPACE/POD/VOLUME goes to --volume)", f.pvc)
		}
		return ref, err
	case f.volume != "":
		ref, err := catalog.ParseVolumeRef(f.volume)
		if err == nil && ref.PVC != "" {
			err = fmt.Errorf("--volume %q: give NAMESPACE/POD/VOLUME (a claim goes to --pvc)", f.volume)
		}
		return ref, err
	}
	return catalog.ParseVolumeRef(args[1])
}

func runExportVolume(ctx context.Context, g *globalOptions, f *exportVolumeFlags, args []string) error {
	ref, err := f.volumeRef(args)
	if err != nil {
		return err
	}
	switch {
	case f.target == "" && f.archive == "":
		return errors.New("say where the files go: --target DIR, or --archive tar to write them to standard output")
	case f.target != "" && f.archive != "":
		return errors.New("--target and --archive exclude each other: restore into a directory or write an archive, not both")
	case f.archive != "" && f.archive != browse.ArchiveTar && f.archive != browse.ArchiveZip:
		return fmt.Errorf("--archive %q is unknown: use tar or zip", f.archive)
	case f.archive != "" && (f.force || f.verify):
		return errors.New("--force and --verify go with --target, not --archive")
	}
	if f.target != "" && !f.force {
		if err := checkEmptyTarget(f.target); err != nil {
			return err
		}
	}

	// A shared lock, as restore takes: a prune must not remove the data
	// while it is read.
	r, release, err := g.openLocked(ctx, false)
	if err != nil {
		return err
	}
	defer release()
	// The backup's snapshot first, then the index (design.rst's read order).
	e, err := catalog.FindBackupEntry(ctx, r, args[0])
	if err != nil {
		return err
	}
	if err := r.LoadIndex(ctx); err != nil {
		return err
	}
	sn := e.Snapshot
	vol, err := findExportVolume(ctx, r, e, ref)
	if err != nil {
		return err
	}
	if f.archive != "" {
		return exportVolumeArchive(ctx, g, r, sn, vol, f.archive)
	}
	return exportVolumeDir(ctx, g, r, e, vol, f)
}

// findExportVolume finds the volume in the backup's backup.json whose
// tree the snapshot holds. A pod volume that backup.json does not list but
// the snapshot holds is still found: the tree is the data.
func findExportVolume(ctx context.Context, r *repo.Repository, e *catalog.BackupEntry, ref catalog.VolumeRef) (*layout.VolumeInfo, error) {
	sn := e.Snapshot
	info, err := catalog.ReadBackupInfo(ctx, r, sn)
	if err != nil {
		return nil, err
	}
	loader := snapshot.NewTreeLoader(r, 64)
	var treeErr error
	has := func(v *layout.VolumeInfo) bool {
		n, err := snapshot.FindNode(ctx, loader, *sn.Tree, v.Path())
		if err != nil && !errors.Is(err, snapshot.ErrPathNotFound) && treeErr == nil {
			treeErr = err
		}
		return err == nil && n.Type == snapshot.NodeDir && n.Subtree != nil
	}
	vol, err := catalog.FindVolume(e.Name, info, ref, has)
	if treeErr != nil {
		return nil, fmt.Errorf("backup %s: %w", e.Name, treeErr)
	}
	if errors.Is(err, catalog.ErrVolumeNotFound) && ref.PVC == "" {
		guess := &layout.VolumeInfo{Namespace: ref.Namespace, Pod: ref.Pod, Volume: ref.Volume}
		if has(guess) {
			return guess, nil
		}
	}
	return vol, err
}

// checkEmptyTarget refuses a target that exists and holds anything:
// restoring a volume over other files mixes the two.
func checkEmptyTarget(dir string) error {
	d, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	defer d.Close()
	fi, err := d.Stat()
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("target %s is not a directory: give a new or empty directory", dir)
	}
	if names, err := d.Readdirnames(1); err != nil && err != io.EOF {
		return fmt.Errorf("target: %w", err)
	} else if len(names) > 0 {
		return fmt.Errorf("target %s is not empty: give a new or empty directory, or --force to restore over its files", dir)
	}
	return nil
}

func exportVolumeArchive(ctx context.Context, g *globalOptions, r *repo.Repository, sn *snapshot.Snapshot, vol *layout.VolumeInfo, format string) error {
	loader := snapshot.NewTreeLoader(r, 1024)
	n, err := snapshot.FindNode(ctx, loader, *sn.Tree, vol.Path())
	if err != nil {
		return err
	}
	if n.Subtree == nil {
		return fmt.Errorf("snapshot %s: %s has no tree: the backup is damaged", sn.ID.Str(), vol.Path())
	}
	// The volume's root is the archive's root: entries are named as the
	// files are under --target.
	dl := &damageLog{g: g}
	bw := bufio.NewWriterSize(g.env.stdout, 1<<20)
	err = browse.Dump(ctx, loader, browse.NewBlobCache(r, 0), *n.Subtree, "/", format, bw, func(p string, err error) error {
		return dl.damaged(vol.Path()+p, err)
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("export %s from snapshot %s: %w", vol.Path(), sn.ID.Str(), err)
	}
	return dl.result(nil)
}

func exportVolumeDir(ctx context.Context, g *globalOptions, r *repo.Repository, e *catalog.BackupEntry, vol *layout.VolumeInfo, f *exportVolumeFlags) error {
	sn := e.Snapshot
	what := vol.Namespace + "/" + vol.Pod + "/" + vol.Volume
	if c := vol.Claim(); c != "" {
		what += " (claim " + vol.Namespace + "/" + c + ")"
	}
	g.printf("exporting volume %s of backup %s (snapshot %s) to %s\n", what, e.Name, sn.ID.Str(), f.target)
	progress := &snapshot.Progress{}
	opts := restorer.RestoreOptions{
		Target:   f.target,
		Verify:   f.verify,
		Progress: progress,
		OnError:  func(p string, err error) { g.warnf("error: %s: %v\n", escapeName(p), err) },
	}
	start := time.Now()
	stop := g.startProgress(progress, "files")
	failed, err := restorer.Restore(ctx, r, sn, vol.Path(), opts)
	stop()
	if err != nil {
		return fmt.Errorf("export %s: %w", what, err)
	}
	// The restorer leaves the target itself alone; here it stands for the
	// volume's root, whose mode and owner matter (a database's 0700).
	if err := applyRootMeta(ctx, r, sn, vol.Path(), f.target); err != nil {
		g.warnf("error: %s: %v\n", escapeName(f.target), err)
		failed++
	}
	g.printf("exported %d files, %d dirs, %s in %s\n", progress.Files.Load(), progress.Dirs.Load(),
		formatBytes(progress.Bytes.Load()), formatDuration(time.Since(start)))
	if f.verify && failed == 0 {
		g.printf("verified the exported files: no differences\n")
	}
	if failed > 0 {
		return fmt.Errorf("%s could not be exported (listed above as \"error:\")", plural(failed, "item"))
	}
	return nil
}

// applyRootMeta gives dir the owner (when root), extended attributes, mode
// and times of the directory at p in the snapshot.
func applyRootMeta(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, p, dir string) error {
	n, err := snapshot.FindNode(ctx, snapshot.NewTreeLoader(r, 8), *sn.Tree, p)
	if err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	fd := int(d.Fd())
	if os.Geteuid() == 0 {
		if err := unix.Fchown(fd, int(n.UID), int(n.GID)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	for _, a := range n.ExtendedAttributes {
		if err := unix.Fsetxattr(fd, a.Name, a.Value, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("setxattr %s: %w", a.Name, err)
		}
	}
	if err := d.Chmod(n.Mode.Perm() | n.Mode&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
		return err
	}
	return os.Chtimes(dir, n.AccessTime, n.ModTime)
}
