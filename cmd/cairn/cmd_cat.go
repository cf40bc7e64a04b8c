package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/spf13/cobra"
)

const catUsage = "config, masterkey, or one of snapshot, tree, index, key, lock, blob, pack followed by an ID"

func newCatCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "cat config|masterkey|snapshot ID|tree SNAPSHOT[:PATH]|tree ID|index ID|key ID|lock ID|blob ID|pack ID",
		Short: "Print an internal object of the repository",
		Long: `Print an internal object of the repository: JSON documents pretty-printed,
blobs and packs as raw bytes. IDs may be abbreviated to a unique prefix;
"snapshot" and "tree" also accept "latest".`,
		Args:      rangeArgs(1, 2, catUsage),
		ValidArgs: []string{"config", "masterkey", "snapshot", "tree", "index", "key", "lock", "blob", "pack"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			kind := args[0]
			needsID := kind != "config" && kind != "masterkey"
			if needsID != (len(args) == 2) {
				if needsID {
					return fmt.Errorf("cat %s needs an ID: cairn cat %s ID", kind, kind)
				}
				return fmt.Errorf("cat %s takes no ID", kind)
			}
			switch kind {
			case "config", "masterkey", "snapshot", "tree", "index", "key", "lock", "blob", "pack":
			default:
				return fmt.Errorf("cannot cat %q: use %s", kind, catUsage)
			}
			r, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			buf, err := catObject(ctx, r, args)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(buf)
			return err
		},
	}
}

// catObject returns what `cat` prints for args.
func catObject(ctx context.Context, r *repo.Repository, args []string) ([]byte, error) {
	kind := args[0]
	switch kind {
	case "config":
		return indentJSON(json.Marshal(r.Config()))
	case "masterkey":
		return indentJSON(json.Marshal(r.Key()))
	case "snapshot":
		sn, err := snapshot.FindSnapshot(ctx, r, args[1], snapshot.Filter{})
		if err != nil {
			return nil, err
		}
		return indentJSON(r.LoadUnpacked(ctx, repo.SnapshotFile, sn.ID))
	case "index", "lock":
		t := map[string]repo.FileType{"index": repo.IndexFile, "lock": repo.LockFile}[kind]
		id, err := r.FindID(ctx, t, args[1])
		if err != nil {
			return nil, err
		}
		return indentJSON(r.LoadUnpacked(ctx, t, id))
	case "key":
		id, err := r.FindID(ctx, repo.KeyFile, args[1])
		if err != nil {
			return nil, err
		}
		return indentJSON(repo.LoadAll(ctx, r.Backend(), repo.Handle{Type: repo.KeyFile, Name: id.String()}))
	case "pack":
		id, err := r.FindID(ctx, repo.PackFile, args[1])
		if err != nil {
			return nil, err
		}
		return repo.LoadAll(ctx, r.Backend(), repo.Handle{Type: repo.PackFile, Name: id.String()})
	}
	// blob and tree need the index.
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	if kind == "blob" {
		for _, t := range []repo.BlobType{repo.DataBlob, repo.TreeBlob} {
			id, err := findBlob(r, t, args[1])
			if errors.Is(err, repo.ErrNoMatch) {
				continue
			}
			if err != nil {
				return nil, err
			}
			return r.LoadBlob(ctx, t, id, nil)
		}
		return nil, fmt.Errorf("blob %q: %w in the index", args[1], repo.ErrNoMatch)
	}
	id, err := resolveTree(ctx, r, args[1])
	if err != nil {
		return nil, err
	}
	return indentJSON(r.LoadBlob(ctx, repo.TreeBlob, id, nil))
}

// resolveTree turns SNAPSHOT:PATH, a tree blob ID (prefix) or a snapshot ID
// into the ID of a tree blob.
func resolveTree(ctx context.Context, r *repo.Repository, spec string) (repo.ID, error) {
	snapSpec, subpath, hasPath := strings.Cut(spec, ":")
	if !hasPath && snapSpec != "latest" {
		id, err := findBlob(r, repo.TreeBlob, spec)
		if err == nil || !errors.Is(err, repo.ErrNoMatch) {
			return id, err
		}
	}
	sn, err := snapshot.FindSnapshot(ctx, r, snapSpec, snapshot.Filter{})
	if err != nil {
		if !hasPath {
			return repo.ID{}, fmt.Errorf("%q is neither a tree nor a snapshot: %w", spec, err)
		}
		return repo.ID{}, err
	}
	if subpath == "" || subpath == "/" {
		return *sn.Tree, nil
	}
	node, err := snapshot.FindNode(ctx, snapshot.NewTreeLoader(r, 64), *sn.Tree, subpath)
	if err != nil {
		return repo.ID{}, fmt.Errorf("snapshot %s: %w", sn.ID.Str(), err)
	}
	if node.Type != snapshot.NodeDir || node.Subtree == nil {
		return repo.ID{}, fmt.Errorf("%s in snapshot %s is a %s, not a directory", subpath, sn.ID.Str(), node.Type)
	}
	return *node.Subtree, nil
}

// findBlob resolves a (prefix of a) blob ID of type t through the index.
func findBlob(r *repo.Repository, t repo.BlobType, prefix string) (repo.ID, error) {
	prefix = strings.ToLower(prefix)
	if id, err := repo.ParseID(prefix); err == nil {
		if r.HasBlob(t, id) {
			return id, nil
		}
		return repo.ID{}, fmt.Errorf("%w: no %v blob %s", repo.ErrNoMatch, t, id.Str())
	}
	matches := map[repo.ID]struct{}{} // the index may list a blob twice
	var match repo.ID
	r.Index().Each(func(pb repo.PackedBlob) bool {
		if pb.Type == t && strings.HasPrefix(pb.ID.String(), prefix) {
			matches[pb.ID] = struct{}{}
			match = pb.ID
		}
		return len(matches) < 2
	})
	switch {
	case len(matches) == 0:
		return repo.ID{}, fmt.Errorf("%w: no %v blob matches %q", repo.ErrNoMatch, t, prefix)
	case len(matches) > 1:
		return repo.ID{}, fmt.Errorf("%w: %q matches several %v blobs; give more characters", repo.ErrAmbiguous, prefix, t)
	}
	return match, nil
}

// indentJSON pretty-prints a JSON document, keeping fields cairn does not
// know about.
func indentJSON(buf []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, bytes.TrimSpace(buf), "", "  "); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}
