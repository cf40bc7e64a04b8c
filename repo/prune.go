package repo

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"
)

// PruneState is the repository as prune found it: the index files, their
// entries and the pack files. Take it under the exclusive lock.
type PruneState struct {
	IndexFiles []ID
	Blobs      []PackedBlob
	PackFiles  map[ID]int64
}

// LoadPruneState reads every index file and lists the pack files. Unlike
// LoadIndex it remembers which index files it read (prune replaces exactly
// those), and an index file that cannot be read is an error: prune must
// not decide what is unused from part of the index. The loaded index is
// installed in r, so that trees can be read to find the used blobs.
func (r *Repository) LoadPruneState(ctx context.Context) (*PruneState, error) {
	st := &PruneState{PackFiles: map[ID]int64{}}
	if err := r.List(ctx, IndexFile, func(id ID, _ int64) error {
		st.IndexFiles = append(st.IndexFiles, id)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list index files: %w", err)
	}
	slices.SortFunc(st.IndexFiles, cmpIDs)
	files := make([][]PackedBlob, len(st.IndexFiles))
	// One unreadable index file stops prune: the others need not be read.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2 * runtime.GOMAXPROCS(0))
	for i, id := range st.IndexFiles {
		g.Go(func() error {
			buf, err := r.LoadUnpacked(gctx, IndexFile, id)
			var ij *IndexJSON
			if err == nil {
				ij, err = DecodeIndex(buf)
			}
			if err != nil {
				return fmt.Errorf("index file %s cannot be read: %w; nothing was deleted: run `cairn repair index` first", id.Str(), err)
			}
			files[i] = ij.Blobs()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	for _, bs := range files {
		st.Blobs = append(st.Blobs, bs...)
	}
	if err := r.List(ctx, PackFile, func(id ID, size int64) error {
		st.PackFiles[id] = size
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	idx := NewIndex()
	idx.AddLoaded(st.Blobs)
	idx.Sort()
	r.idx = idx
	r.announceTreePacks(idx, false) // the used-blob walk reads them next
	return st, nil
}

// Input combines the state with the used blobs for PlanPrune.
func (s *PruneState) Input(used map[BlobHandle]struct{}) PruneInput {
	return PruneInput{Blobs: s.Blobs, PackFiles: s.PackFiles, Used: used}
}

// PackSize is the target size of new packs.
func (r *Repository) PackSize() int { return r.opts.PackSize }

// PruneResult tells what Prune did.
type PruneResult struct {
	CopiedBlobs       int   `json:"copied_blobs"`
	NewPacks          int   `json:"new_packs"`
	NewPackSize       int64 `json:"new_pack_size"`
	IndexFilesWritten int   `json:"index_files_written"`
	IndexFilesRemoved int   `json:"index_files_removed"`
	PacksRemoved      int   `json:"packs_removed"`
	RemovedSize       int64 `json:"removed_size"`
}

// Prune carries out a plan made from st. The order makes an interruption
// at any point harmless: new packs are written first (unindexed until the
// new index exists), then the new index that covers every kept and new
// pack and supersedes all old index files, then the old index files are
// deleted, and only then the packs that are no longer indexed. At worst an
// interrupted prune leaves unused data behind for the next one.
// stage, if set, is told when each step starts.
func (r *Repository) Prune(ctx context.Context, st *PruneState, plan *PrunePlan, used map[BlobHandle]struct{}, stage func(string)) (PruneResult, error) {
	var res PruneResult
	if r.opts.ReadOnly {
		return res, fmt.Errorf("prune: %w", ErrReadOnly)
	}
	say := func(s string) {
		if stage != nil {
			stage(s)
		}
	}
	var newBlobs []PackedBlob
	if len(plan.Copy) > 0 {
		say(fmt.Sprintf("repacking %d blobs from %d packs", len(plan.Copy), len(plan.Repack)))
		var err error
		if newBlobs, err = r.repack(ctx, plan.Copy, &res); err != nil {
			return res, fmt.Errorf("prune: %w", err)
		}
	}
	entries := slices.Concat(plan.KeepBlobs, newBlobs)
	have := make(map[BlobHandle]struct{}, len(entries))
	for _, b := range entries {
		have[b.BlobHandle] = struct{}{}
	}
	for h := range used {
		if _, ok := have[h]; !ok {
			// The plan guarantees this; if it ever fails, stop before deleting.
			return res, fmt.Errorf("prune: %w: used %v would not be indexed any more; nothing was deleted", ErrPruneUnsafe, h)
		}
	}

	say("writing the new index")
	files := BuildIndexJSON(entries, indexMaxBlobs)
	if len(files) == 0 {
		files = []*IndexJSON{{Packs: []PackJSON{}}}
	}
	files[0].Supersedes = st.IndexFiles
	written := map[ID]bool{}
	for _, f := range files {
		id, err := r.SaveJSONUnpacked(ctx, IndexFile, f)
		if err != nil {
			return res, fmt.Errorf("prune: save index: %w", err)
		}
		written[id] = true
		res.IndexFilesWritten++
	}

	say("removing old index files")
	for _, id := range st.IndexFiles {
		if written[id] {
			continue // same content, same file
		}
		if err := r.be.Remove(ctx, Handle{Type: IndexFile, Name: id.String()}); err != nil && !IsNotExist(err) {
			return res, fmt.Errorf("prune: remove old index %s: %w (no pack was deleted yet)", id.Str(), err)
		}
		res.IndexFilesRemoved++
	}
	idx := NewIndex()
	idx.AddLoaded(entries)
	idx.Sort()
	r.idx = idx

	obsolete := slices.Concat(plan.Repack, plan.Remove, plan.Unindexed, plan.Damaged)
	say(fmt.Sprintf("removing %d packs", len(obsolete)))
	for _, id := range obsolete {
		if err := r.be.Remove(ctx, Handle{Type: PackFile, Name: id.String()}); err != nil && !IsNotExist(err) {
			return res, fmt.Errorf("prune: remove pack %s: %w (it is unused; the next prune removes it)", id.Str(), err)
		}
		res.PacksRemoved++
		res.RemovedSize += st.PackFiles[id]
	}
	return res, nil
}

// repackBlob is one verified blob on its way into a new pack.
type repackBlob struct {
	b   PackedBlob
	raw []byte // stored bytes, as in the old pack
}

// repack copies the given blobs into new packs. Each blob is decrypted and
// its hash verified before its stored bytes are copied as they are (no new
// encryption, no dedup against the old copies). Old packs are streamed and
// new packs written to temp files, so memory holds a few blobs at a time.
// It returns the new locations once every new pack is stored.
func (r *Repository) repack(ctx context.Context, copies []PackedBlob, res *PruneResult) ([]PackedBlob, error) {
	byPack := map[ID][]PackedBlob{}
	for _, b := range copies {
		byPack[b.Pack] = append(byPack[b.Pack], b)
	}
	packs := slices.SortedFunc(mapKeys(byPack), cmpIDs)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	work := make(chan ID)
	items := make(chan repackBlob, 4)
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
	var wg sync.WaitGroup
	for range min(2, len(packs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var scratch, plain []byte
			for id := range work {
				err := r.streamVerified(ctx, id, byPack[id], &scratch, &plain, func(rb repackBlob) bool {
					select {
					case items <- rb:
						return true
					case <-ctx.Done():
						return false
					}
				})
				if err != nil {
					fail(err)
				}
			}
		}()
	}
	go func() {
		defer close(items)
		defer wg.Wait()
		defer close(work)
		for _, id := range packs {
			select {
			case work <- id:
			case <-ctx.Done():
				return
			}
		}
	}()

	var out []PackedBlob
	cur := map[BlobType]*packFile{}
	slots := newPackSlots(2, r.opts.PackSize) // one open pack per blob type
	defer func() {
		for _, pf := range cur {
			pf.discard()
		}
		slots.close()
	}()
	save := func(pf *packFile) error {
		delete(cur, pf.t)
		id, size := pf.finish(r.key)
		if err := pf.store(ctx, r.be, Handle{Type: PackFile, Name: id.String()}, size); err != nil {
			return fmt.Errorf("save pack: %w", err)
		}
		res.NewPacks++
		res.NewPackSize += size
		out = append(out, pf.blobs...)
		return nil
	}
	for rb := range items {
		if failed() != nil {
			continue // drain
		}
		pf := cur[rb.b.Type]
		if pf == nil {
			pf = newPackFile(rb.b.Type, slots.get())
			cur[rb.b.Type] = pf
		}
		pf.add(rb.b.BlobHandle, rb.raw, rb.b.UncompressedLength)
		res.CopiedBlobs++
		if pf.size >= r.opts.PackSize {
			if err := save(pf); err != nil {
				fail(err)
			}
		}
	}
	if err := failed(); err != nil {
		return nil, err
	}
	for _, t := range []BlobType{DataBlob, TreeBlob} {
		if pf := cur[t]; pf != nil {
			if err := save(pf); err != nil {
				return nil, err
			}
		}
	}
	return out, ctx.Err()
}

// streamVerified reads the span of pack id that holds bs, checks every
// blob in it and hands each to send (which returns false to stop). A
// damaged blob stops the prune before anything is deleted.
func (r *Repository) streamVerified(ctx context.Context, id ID, bs []PackedBlob, scratch, plain *[]byte, send func(repackBlob) bool) error {
	slices.SortFunc(bs, func(a, b PackedBlob) int { return cmp.Compare(a.Offset, b.Offset) })
	start, end := int64(bs[0].Offset), int64(0)
	for _, b := range bs {
		end = max(end, int64(b.Offset)+int64(b.Length))
	}
	rd, err := r.be.Load(ctx, Handle{Type: PackFile, Name: id.String()}, int(end-start), start)
	if err != nil {
		return fmt.Errorf("read pack %s: %w; nothing was deleted", id.Str(), err)
	}
	defer rd.Close()
	pos := start
	for _, b := range bs {
		if int64(b.Offset) < pos {
			return fmt.Errorf("pack %s: %w: index entries overlap at offset %d; nothing was deleted", id.Str(), ErrCorruptPack, b.Offset)
		}
		if _, err := io.CopyN(io.Discard, rd, int64(b.Offset)-pos); err != nil {
			return fmt.Errorf("read pack %s: %w; nothing was deleted", id.Str(), err)
		}
		raw := make([]byte, b.Length)
		if _, err := io.ReadFull(rd, raw); err != nil {
			return fmt.Errorf("read pack %s at %d: %w; nothing was deleted", id.Str(), b.Offset, err)
		}
		pos = int64(b.Offset) + int64(b.Length)
		// DecodeBlob may decrypt in place; the stored bytes must stay intact.
		*scratch = append((*scratch)[:0], raw...)
		p, err := r.DecodeBlob(b, *scratch, *plain)
		if err != nil {
			return fmt.Errorf("%w; nothing was deleted: run `cairn check --read-data`", err)
		}
		*plain = p
		if !send(repackBlob{b: b, raw: raw}) {
			return ctx.Err()
		}
	}
	return nil
}
