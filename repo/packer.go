package repo

import (
	"context"
	"fmt"
	"sync"

	"github.com/cairn-backup/cairn/crypto"
)

// indexMaxBlobs keeps index files well below restic's 8 MiB limit.
var indexMaxBlobs = 50000 // a variable for tests

// packer groups new blobs into packs per type, assembled in memory, and
// uploads full packs in the background. Blobs become visible in the index
// once their pack is stored; an index file is written once it is full, the
// rest by Flush.
type packer struct {
	r        *Repository
	mu       sync.Mutex
	cur      map[BlobType]*packFile
	slots    *packSlots
	inflight map[BlobHandle]struct{}
	written  []PackedBlob // stored in packs, not yet in an index file
	err      error
	// adding counts, by Flush generation, the SaveBlob calls that marked
	// a blob in flight and have not put it into a pack yet. Another
	// writer is told such a blob is known, so a Flush waits for the calls
	// begun before it: its caller's snapshot may refer to their blobs.
	adding  map[uint64]int
	gen     uint64
	addDone *sync.Cond

	uploads chan *packFile
	// pending counts packs handed to the uploaders and not yet uploaded;
	// uploaded is signalled when it reaches 0. A counter under mu, not a
	// WaitGroup: writers add packs while a Flush waits, and a WaitGroup
	// must not be added to from zero while a Wait is returning.
	pending  int
	uploaded *sync.Cond
	start    sync.Once
}

// bufPool recycles the compression and encryption buffers of SaveBlob:
// without it every blob costs two allocations of its own size.
var bufPool = sync.Pool{New: func() any { return new([]byte) }}

func getBuf(n int) *[]byte {
	b := bufPool.Get().(*[]byte)
	if cap(*b) < n {
		*b = make([]byte, 0, n)
	}
	*b = (*b)[:0]
	return b
}

func (r *Repository) packer() *packer {
	r.pkOnce.Do(func() { // SaveBlob is called from many goroutines at once
		r.pk = &packer{r: r, cur: map[BlobType]*packFile{}, inflight: map[BlobHandle]struct{}{}, adding: map[uint64]int{},
			// One open pack per blob type and one per uploader: a writer
			// waits for a buffer only while every uploader is busy.
			slots: newPackSlots(r.opts.Uploaders+2, r.opts.PackSize)}
		r.pk.addDone = sync.NewCond(&r.pk.mu)
		r.pk.uploaded = sync.NewCond(&r.pk.mu)
	})
	return r.pk
}

func (p *packer) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

func (p *packer) startUploaders(ctx context.Context) {
	p.start.Do(func() {
		p.uploads = make(chan *packFile)
		for range p.r.opts.Uploaders {
			go func() {
				for pf := range p.uploads {
					p.upload(ctx, pf)
					p.mu.Lock()
					if p.pending--; p.pending == 0 {
						p.uploaded.Broadcast()
					}
					p.mu.Unlock()
				}
			}()
		}
	})
}

func (p *packer) upload(ctx context.Context, pf *packFile) {
	p.mu.Lock()
	failed := p.err != nil
	p.mu.Unlock()
	if failed { // nobody will index it: no use storing it
		pf.discard()
		return
	}
	id, size := pf.finish(p.r.key)
	h := Handle{Type: PackFile, Name: id.String()}
	if err := p.r.awaitLocks(ctx); err != nil { // a lock taken ahead must hold first
		pf.discard()
		p.fail(fmt.Errorf("save pack: %w", err))
		return
	}
	if pf.t == TreeBlob {
		p.r.announceTreePack(id)
	}
	if err := pf.store(ctx, p.r.be, h, size); err != nil {
		p.fail(fmt.Errorf("save pack: %w", err))
		return
	}
	for _, b := range pf.blobs {
		p.r.idx.Add(b)
	}
	p.mu.Lock()
	for _, b := range pf.blobs {
		delete(p.inflight, b.BlobHandle)
	}
	p.written = append(p.written, pf.blobs...)
	var full []PackedBlob
	if len(p.written) >= indexMaxBlobs {
		full, p.written = p.written, nil
	}
	p.mu.Unlock()
	// A full index file is saved now, by this uploader, not all at the
	// end by Flush: a backup of many small files would otherwise wait for
	// every index file after its last pack.
	if full != nil {
		if err := p.r.saveIndexFiles(ctx, full); err != nil {
			p.fail(fmt.Errorf("save index: %w", err))
		}
	}
}

// SaveBlob stores data as a blob of type t unless the repository already
// has it. id may be zero, then it is computed. It returns the blob's ID,
// whether it was already known, and the stored size (0 when known). Safe
// for concurrent use; compression and encryption run in the caller's
// goroutine so callers set the parallelism.
func (r *Repository) SaveBlob(ctx context.Context, t BlobType, data []byte, id ID) (ID, bool, int, error) {
	if r.opts.ReadOnly {
		return ID{}, false, 0, fmt.Errorf("save blob: %w", ErrReadOnly)
	}
	if id.IsNull() {
		id = Hash(data)
	}
	h := BlobHandle{ID: id, Type: t}
	p := r.packer()
	p.mu.Lock()
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return id, false, 0, err
	}
	if _, ok := p.inflight[h]; ok || r.idx.Has(h) {
		p.mu.Unlock()
		return id, true, 0, nil
	}
	p.inflight[h] = struct{}{}
	gen := p.gen
	p.adding[gen]++
	p.mu.Unlock()

	payload, ulen := data, uint32(0)
	if r.cfg.Version >= 2 && r.opts.Compression != CompressionOff && len(data) > 0 {
		// Room for zstd's worst case, so the encoder never reallocates.
		cbuf := getBuf(len(data) + len(data)/128 + 1024)
		defer bufPool.Put(cbuf)
		c, ok := compressBlob(*cbuf, data, r.opts.Compression)
		*cbuf = c[:0]
		if ok {
			payload, ulen = c, uint32(len(data))
		}
	}
	n := len(payload) + crypto.Extension

	p.startUploaders(context.WithoutCancel(ctx))
	p.mu.Lock()
	var pf *packFile
	var spare *packBuf
	for {
		pf = p.cur[t]
		if pf != nil && !pf.fits(n) {
			// Only a blob larger than a chunk (a huge directory's tree)
			// gets here: the pack cannot grow while others seal into it.
			old := pf
			pf = nil
			if p.full(old) {
				p.mu.Unlock()
				p.uploads <- old
				p.mu.Lock()
				continue
			}
		}
		if pf != nil {
			break
		}
		if spare != nil {
			pf = newPackFile(t, spare)
			spare = nil
			p.cur[t] = pf
			break
		}
		// A buffer may have to wait for an uploader: never under p.mu,
		// which the writers of full packs need to hand them over.
		p.mu.Unlock()
		spare = p.slots.get()
		p.mu.Lock()
	}
	dst := pf.reserve(h, n, ulen)
	if pf.size >= r.opts.PackSize {
		p.full(pf)
	}
	p.mu.Unlock()
	if spare != nil {
		spare.put() // another writer opened a pack meanwhile
	}

	// Sealed straight into the pack, outside the lock: writers encrypt
	// in parallel and nothing is copied.
	r.key.Seal(dst, payload)

	p.mu.Lock()
	pf.writers--
	send := pf.isFull && pf.writers == 0
	p.added(gen)
	p.mu.Unlock()
	if send {
		// Handed over even when ctx ends: other writers were told its
		// blobs are known, and the uploaders (never cancelled) drain the
		// channel.
		p.uploads <- pf
	}
	return id, false, n, nil
}

// full takes pf out of the writers' hands; p.mu is held. It counts as
// pending at once. It reports whether the caller must send it to an
// uploader (after unlocking): when nobody is sealing into it; otherwise
// the last writer sends it.
func (p *packer) full(pf *packFile) bool {
	delete(p.cur, pf.t)
	pf.isFull = true
	p.pending++
	return pf.writers == 0
}

// added ends a SaveBlob call counted in adding; p.mu is held.
func (p *packer) added(gen uint64) {
	if p.adding[gen]--; p.adding[gen] == 0 {
		delete(p.adding, gen)
		p.addDone.Broadcast()
	}
}

// Flush uploads partly filled packs, waits for all uploads, and writes index
// files for everything stored since the last Flush. Packs first, then the
// index: a snapshot saved after Flush refers only to indexed blobs, also
// those another writer was adding when this one was told they were known.
func (r *Repository) Flush(ctx context.Context) error {
	if r.pk == nil {
		return nil
	}
	p := r.pk
	p.mu.Lock()
	// Only the calls begun before this Flush are waited for: later ones
	// cannot starve it.
	mine := p.gen
	p.gen++
	for p.addingUpTo(mine) {
		p.addDone.Wait()
	}
	var rest []*packFile
	for _, pf := range p.cur {
		if p.full(pf) {
			rest = append(rest, pf)
		}
	}
	p.mu.Unlock()
	if len(rest) > 0 {
		p.startUploaders(context.WithoutCancel(ctx))
	}
	for _, pf := range rest {
		p.uploads <- pf
	}
	p.mu.Lock()
	for p.pending > 0 {
		p.uploaded.Wait()
	}
	err, written := p.err, p.written
	p.written = nil
	p.mu.Unlock()
	if err != nil {
		return err
	}
	if err := r.saveIndexFiles(ctx, written); err != nil {
		return fmt.Errorf("save index: %w", err)
	}
	r.idx.Merge()
	return nil
}

// saveIndexFiles saves index files listing blobs (adjacent per pack, as
// the packer appends them), at most indexMaxBlobs each.
func (r *Repository) saveIndexFiles(ctx context.Context, blobs []PackedBlob) error {
	for len(blobs) > 0 {
		n := min(len(blobs), indexMaxBlobs)
		for n < len(blobs) && n > 1 && blobs[n].Pack == blobs[n-1].Pack {
			n-- // a pack's blobs stay in one file
		}
		if n == 1 && len(blobs) > 1 && blobs[1].Pack == blobs[0].Pack {
			n = min(len(blobs), indexMaxBlobs) // one pack of more blobs than a file takes
		}
		// About 200 bytes of JSON a blob: grown once.
		id, err := r.SaveUnpacked(ctx, IndexFile, appendIndexJSON(make([]byte, 0, 64+n*220), blobs[:n]))
		if err != nil {
			return err
		}
		blobs = blobs[n:]
		// Its entries are in the index already: LoadNewIndexes (a long-
		// running writer such as the node agent calls it) must not add
		// them a second time.
		r.idxMu.Lock()
		if r.idxLoaded != nil && r.idxLoadedFor == r.idx {
			r.idxLoaded[id] = true
		}
		r.idxMu.Unlock()
	}
	return nil
}

// addingUpTo reports whether a SaveBlob call of generation gen or
// earlier is still adding; p.mu is held.
func (p *packer) addingUpTo(gen uint64) bool {
	for g := range p.adding {
		if g <= gen {
			return true
		}
	}
	return false
}
