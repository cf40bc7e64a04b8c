package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/cairn-backup/cairn/fusefs"
	"github.com/spf13/cobra"
)

func newMountCmd(g *globalOptions) *cobra.Command {
	var allowOther, noDefaultPermissions, debug bool
	cmd := &cobra.Command{
		Use:   "mount [flags] DIR",
		Short: "Browse the snapshots as a read-only file system",
		Long: `Mount the repository read-only on DIR (FUSE) and serve it until Ctrl-C,
SIGTERM or "fusermount3 -u DIR":

  snapshots/<time>/...   one directory per snapshot, and "latest"
  ids/<short id>/...     tags/<tag>/<time>/...     hosts/<host>/<time>/...
  namespaces/<namespace>/<backup>/resources/...          Kubernetes backups
  namespaces/<namespace>/<backup>/pods/<pod>/<volume>/...

New snapshots appear without remounting.`,
		Args: exactArgs(1, "a mount point directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			dir := args[0]
			if os.Getenv("GOMAXPROCS") == "" {
				// Serving FUSE is syscall-heavy (reading /dev/fuse, pack
				// files, writing replies): with a P per core, a thread
				// blocked in one holds its P and a core idles while blobs
				// wait to be decrypted. Twice as many Ps keep the cores
				// busy (measured: 256 MiB sequential read 0.254 s -> 0.230 s
				// on 2 cores).
				runtime.GOMAXPROCS(2 * runtime.GOMAXPROCS(0))
			}
			if err := fusefs.CheckMountPoint(dir); err != nil {
				return err
			}
			r, release, err := g.openLocked(ctx, false)
			if err != nil {
				return err
			}
			defer release()
			fsys, err := fusefs.New(ctx, r, fusefs.Options{Warn: func(err error) { g.warnf("warning: %v\n", err) }})
			if err != nil {
				return err
			}
			m, err := fusefs.Mount(dir, fsys, fusefs.MountOptions{AllowOther: allowOther, DefaultPermissions: !noDefaultPermissions, Debug: debug})
			if err != nil {
				return fmt.Errorf("%w (is FUSE available? /dev/fuse and fusermount3 are needed)", err)
			}
			g.printf("serving %s at %s; press Ctrl-C or run `fusermount3 -u %s` to unmount\n",
				plural(len(fsys.Snapshots()), "snapshot"), m.Dir, m.Dir)
			select {
			case <-ctx.Done():
				if err := m.Unmount(); err != nil {
					return err
				}
				g.printf("unmounted %s\n", m.Dir)
			case <-m.Done():
				g.printf("%s was unmounted\n", m.Dir)
			}
			// What could not be read was named on stderr when it was met.
			dl := &damageLog{g: g}
			dl.snapshots, dl.items = fsys.Damaged()
			return dl.result(nil)
		},
	}
	cmd.Flags().BoolVar(&allowOther, "allow-other", false, "let other users access the mount (needs user_allow_other in /etc/fuse.conf unless root)")
	cmd.Flags().BoolVar(&noDefaultPermissions, "no-default-permissions", false, "do not let the kernel check file modes (with --allow-other, everyone can read everything)")
	cmd.Flags().BoolVar(&debug, "debug-fuse", false, "log every FUSE request")
	return cmd
}
