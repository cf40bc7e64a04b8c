package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/spf13/cobra"
)

func newKeyCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the keys (passwords) of the repository",
		Args:  exactArgs(0, "a subcommand: list, add, remove or passwd"),
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	var newPasswordFile string
	add := &cobra.Command{
		Use:   "add",
		Short: "Add a key (password) to the repository",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.setKeyKDF(); err != nil {
				return err
			}
			return withWritableRepo(cmd.Context(), g, "key add", false, func(ctx context.Context, r *repo.Repository) error {
				id, err := addKey(ctx, g, r, newPasswordFile)
				if err != nil {
					return err
				}
				g.printf("saved new key %s\n", id)
				return nil
			})
		},
	}
	add.Flags().StringVar(&newPasswordFile, "new-password-file", "", "read the new password from `file`")

	passwd := &cobra.Command{
		Use:   "passwd",
		Short: "Change the password: add a new key, remove the current one",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.setKeyKDF(); err != nil {
				return err
			}
			return withWritableRepo(cmd.Context(), g, "key passwd", true, func(ctx context.Context, r *repo.Repository) error {
				old := r.KeyID()
				id, err := addKey(ctx, g, r, newPasswordFile)
				if err != nil {
					return err
				}
				if err := r.Backend().Remove(ctx, repo.Handle{Type: repo.KeyFile, Name: old.String()}); err != nil {
					return fmt.Errorf("new key %s saved, but removing the old key failed: %w; remove it with `cairn key remove %s`", id.Str(), err, old.Str())
				}
				g.printf("saved new key %s, removed old key %s\n", id, old)
				return nil
			})
		},
	}
	passwd.Flags().StringVar(&newPasswordFile, "new-password-file", "", "read the new password from `file`")

	remove := &cobra.Command{
		Use:   "remove KEY-ID",
		Short: "Remove a key from the repository",
		Args:  exactArgs(1, "one key ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withWritableRepo(cmd.Context(), g, "key remove", true, func(ctx context.Context, r *repo.Repository) error {
				id, err := r.FindID(ctx, repo.KeyFile, args[0])
				if err != nil {
					return fmt.Errorf("key %q: %w", args[0], err)
				}
				if id == r.KeyID() {
					return fmt.Errorf("refusing to remove key %s: it is the key this password opened; open the repository with another key's password to remove it", id.Str())
				}
				if err := r.Backend().Remove(ctx, repo.Handle{Type: repo.KeyFile, Name: id.String()}); err != nil {
					return err
				}
				g.printf("removed key %s\n", id)
				return nil
			})
		},
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the keys of the repository",
		Args:  exactArgs(0, "no arguments"),
		RunE: onRepo(g, func(ctx context.Context, r *repo.Repository, _ []string) error {
			return listKeys(ctx, g, r)
		}),
	}
	cmd.AddCommand(list, add, remove, passwd)
	return cmd
}

// withWritableRepo opens the repository for a command that writes and
// holds a lock while fn runs.
func withWritableRepo(ctx context.Context, g *globalOptions, what string, exclusive bool, fn func(context.Context, *repo.Repository) error) error {
	kind := appendLock
	if exclusive {
		kind = exclusiveLock
	}
	if err := g.declareWrite(what, kind); err != nil {
		return err
	}
	r, release, err := g.openLocked(ctx, exclusive)
	if err != nil {
		return err
	}
	defer release()
	return fn(ctx, r)
}

// addKey stores a key for a new password from file or prompt.
func addKey(ctx context.Context, g *globalOptions, r *repo.Repository, file string) (repo.ID, error) {
	var pw string
	var err error
	switch {
	case file != "":
		pw, err = readPasswordFile(file)
	case g.env.readPassword != nil:
		pw, err = g.promptPassword(ctx, "enter new password: ", true)
	default:
		err = errors.New("no new password: use --new-password-file (or run at a terminal to be asked)")
	}
	if err != nil {
		return repo.ID{}, err
	}
	return r.AddKey(ctx, pw)
}

// setKeyKDF picks the scrypt costs for keys that this run adds.
func (g *globalOptions) setKeyKDF() error {
	if err := g.checkWritable("adding a key"); err != nil {
		return err
	}
	kdf, err := g.kdfParams()
	g.kdf = kdf
	return err
}

// keyInfo is one row of `key list`; the JSON names are restic's.
type keyInfo struct {
	Current  bool      `json:"current"`
	ID       string    `json:"id"`
	UserName string    `json:"userName"`
	HostName string    `json:"hostName"`
	Created  time.Time `json:"created"`
}

func listKeys(ctx context.Context, g *globalOptions, r *repo.Repository) error {
	var ids []repo.ID
	if err := r.List(ctx, repo.KeyFile, func(id repo.ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		return err
	}
	var keys []keyInfo
	for _, id := range ids {
		buf, err := repo.LoadAll(ctx, r.Backend(), repo.Handle{Type: repo.KeyFile, Name: id.String()})
		if err != nil {
			return err
		}
		var kf crypto.KeyFile
		if err := json.Unmarshal(buf, &kf); err != nil {
			g.warnf("warning: key %s is not a valid key file: %v\n", id.Str(), err)
			continue
		}
		keys = append(keys, keyInfo{Current: id == r.KeyID(), ID: id.String(), UserName: kf.Username, HostName: kf.Hostname, Created: kf.Created})
	}
	slices.SortFunc(keys, func(a, b keyInfo) int { return a.Created.Compare(b.Created) })
	if g.json {
		if keys == nil {
			keys = []keyInfo{}
		}
		return g.printJSON(keys, false)
	}
	rows := make([][]string, len(keys))
	for i, k := range keys {
		mark := " "
		if k.Current {
			mark = "*"
		}
		rows[i] = []string{mark + k.ID[:8], k.UserName, k.HostName, k.Created.Local().Format("2006-01-02 15:04:05")}
	}
	printTable(g, []string{" ID", "User", "Host", "Created"}, rows)
	return nil
}
