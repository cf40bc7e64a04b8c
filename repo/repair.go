package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"
)

// RepairResult tells what RebuildIndex found.
type RepairResult struct {
	Packs        int // packs read and indexed
	Blobs        int
	DamagedPacks []ID // packs whose header could not be read; left out of the index
	OldIndexes   int  // index files replaced
}

// ReadPackHeader reads the blob list from the end of a pack.
func (r *Repository) ReadPackHeader(ctx context.Context, pack ID, size int64) ([]PackedBlob, error) {
	h := Handle{Type: PackFile, Name: pack.String()}
	want := PackHeaderReadSize(size)
	for range 2 {
		rd, err := r.be.Load(ctx, h, int(want), size-want)
		if err != nil {
			return nil, err
		}
		tail, err := io.ReadAll(rd)
		rd.Close()
		if err != nil {
			return nil, fmt.Errorf("read pack %v header: %w", pack.Str(), err)
		}
		blobs, need, err := ParsePackHeader(r.key, pack, tail, size)
		if err != nil || need == 0 {
			return blobs, err
		}
		want = int64(need)
	}
	return nil, fmt.Errorf("pack %v: %w: header keeps growing", pack.Str(), ErrCorruptPack)
}

// RebuildIndex reads the header of every pack and writes a fresh index that
// supersedes all existing index files, which are then removed. The new index
// is complete before anything is deleted, so an interruption loses nothing.
func (r *Repository) RebuildIndex(ctx context.Context, warn func(string)) (RepairResult, error) {
	var res RepairResult
	if r.opts.ReadOnly {
		return res, fmt.Errorf("repair index: %w", ErrReadOnly)
	}
	var oldIdx IDs
	if err := r.List(ctx, IndexFile, func(id ID, _ int64) error { oldIdx = append(oldIdx, id); return nil }); err != nil {
		return res, err
	}
	type packInfo struct {
		id   ID
		size int64
	}
	var packs []packInfo
	if err := r.List(ctx, PackFile, func(id ID, size int64) error {
		packs = append(packs, packInfo{id, size})
		return nil
	}); err != nil {
		return res, err
	}
	var mu sync.Mutex
	var all []PackedBlob
	// A damaged pack is noted and skipped; any other error (the backend
	// failed) stops the rest.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2 * runtime.GOMAXPROCS(0))
	for _, p := range packs {
		g.Go(func() error {
			blobs, err := r.ReadPackHeader(gctx, p.id, p.size)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrCorruptPack):
				res.DamagedPacks = append(res.DamagedPacks, p.id)
				if warn != nil {
					warn(err.Error())
				}
			case err != nil:
				return err
			default:
				res.Packs++
				all = append(all, blobs...)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return res, fmt.Errorf("repair index: %w", err)
	}
	res.Blobs = len(all)
	files := BuildIndexJSON(all, indexMaxBlobs)
	if len(files) == 0 {
		files = []*IndexJSON{{Packs: []PackJSON{}}}
	}
	files[0].Supersedes = oldIdx
	written := map[ID]bool{}
	for _, f := range files {
		id, err := r.SaveJSONUnpacked(ctx, IndexFile, f)
		if err != nil {
			return res, fmt.Errorf("repair index: save: %w", err)
		}
		written[id] = true
	}
	for _, id := range oldIdx {
		if written[id] {
			continue // identical content, same file
		}
		if err := r.be.Remove(ctx, Handle{Type: IndexFile, Name: id.String()}); err != nil && !IsNotExist(err) {
			return res, fmt.Errorf("repair index: remove old index %v: %w", id.Str(), err)
		}
		res.OldIndexes++
	}
	idx := NewIndex()
	idx.AddLoaded(all)
	idx.Sort()
	r.idx = idx
	return res, nil
}
