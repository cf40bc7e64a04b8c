package repo

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cairn-backup/cairn/crypto"

	"golang.org/x/sync/errgroup"
)

// Severity grades a problem found by a check.
type Severity int

const (
	SevError   Severity = iota // the repository is damaged
	SevWarning                 // harmless, e.g. unused packs or stale locks
)

func (s Severity) String() string {
	if s == SevWarning {
		return "warning"
	}
	return "error"
}

// Checker verifies a repository's files: index files, pack files and their
// sizes, locks and, with ReadPacks, every byte of the packs. Each problem is
// passed to report as one line; report is called by one goroutine at a time.
type Checker struct {
	r      *Repository
	mu     sync.Mutex // serializes report
	report func(Severity, string)

	idx   *Index
	packs map[ID]*indexedPack // packs named by an index file
	files map[ID]int64        // pack files present, with their sizes
}

// indexedPack is what the index says about one pack; per-blob entries stay
// in the Index only, so checking costs little memory beyond it.
type indexedPack struct {
	size       int64 // pack size the index implies
	blobs      int
	data, tree bool
}

// NewChecker prepares a check of r. Problems go to report.
func NewChecker(r *Repository, report func(Severity, string)) *Checker {
	return &Checker{r: r, report: report, packs: map[ID]*indexedPack{}, files: map[ID]int64{}}
}

func (c *Checker) reportf(sev Severity, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.report != nil {
		c.report(sev, fmt.Sprintf(format, args...))
	}
}

// Stats returns how many packs the index names and how many blob entries it has.
func (c *Checker) Stats() (packs, blobs int) {
	if c.idx == nil {
		return len(c.packs), 0
	}
	return len(c.packs), c.idx.Len()
}

// packEntrySize is what one blob adds to its pack's size: its bytes and its
// header entry. The header's crypto overhead and 4-byte length come on top.
func packEntrySize(b BlobJSON) int64 {
	if b.UncompressedLength != 0 {
		return int64(b.Length) + headerEntrySizeCompressed
	}
	return int64(b.Length) + headerEntrySize
}

// LoadIndex reads every index file, reporting the ones that cannot be read
// (the rest are still used), and installs the merged index in the
// repository so that blobs load through it.
func (c *Checker) LoadIndex(ctx context.Context) error {
	var ids []ID
	if err := c.r.List(ctx, IndexFile, func(id ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		return fmt.Errorf("check: list index files: %w", err)
	}
	slices.SortFunc(ids, func(a, b ID) int { return strings.Compare(a.String(), b.String()) })

	type loaded struct {
		id  ID
		ij  *IndexJSON
		err error
	}
	// Every unreadable index file is reported and the rest still used.
	results := make(chan loaded)
	go func() {
		defer close(results)
		var g errgroup.Group
		g.SetLimit(4)
		for _, id := range ids {
			if ctx.Err() != nil {
				break
			}
			g.Go(func() error {
				buf, err := c.r.LoadUnpacked(ctx, IndexFile, id)
				var ij *IndexJSON
				if err == nil {
					ij, err = DecodeIndex(buf)
				}
				results <- loaded{id, ij, err}
				return nil
			})
		}
		_ = g.Wait() // never fails: errors go through results
	}()

	idx := NewIndex()
	owner := map[ID]ID{} // pack -> index file that named it first
	var dups dupPacks
	for l := range results {
		if l.err != nil {
			if ctx.Err() == nil {
				c.reportf(SevError, "index file %s cannot be read: %v; `cairn repair index` rebuilds the index from the packs", l.id.Str(), l.err)
			}
			continue
		}
		c.addIndexFile(idx, owner, l.id, l.ij, &dups)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if dups.n > 0 {
		c.reportf(SevWarning, "%s listed in more than one index file (e.g. %s); harmless, `cairn repair index` cleans this up", plural(dups.n, "pack is", "packs are"), dups.example)
	}
	idx.Sort()
	c.idx = idx
	c.r.idx = idx
	c.r.announceTreePacks(idx, false) // the tree walk reads them next
	c.reportIndexHints()
	return nil
}

// dupPacks counts packs named by several index files.
type dupPacks struct {
	n       int
	example string
}

func (c *Checker) addIndexFile(idx *Index, owner map[ID]ID, file ID, ij *IndexJSON, dups *dupPacks) {
	var blobs []PackedBlob
	for _, p := range ij.Packs {
		if first, ok := owner[p.ID]; ok {
			// Counting it twice would break the size check; one copy suffices.
			if dups.n == 0 {
				dups.example = fmt.Sprintf("pack %s in index files %s and %s", p.ID.Str(), first.Str(), file.Str())
			}
			dups.n++
			continue
		}
		owner[p.ID] = file
		ip := &indexedPack{size: crypto.Extension + 4, blobs: len(p.Blobs)}
		for _, b := range p.Blobs {
			if b.Length < crypto.Extension {
				c.reportf(SevError, "index file %s: %v blob %s in pack %s has impossible length %d; `cairn repair index` rebuilds the index", file.Str(), b.Type, b.ID.Str(), p.ID.Str(), b.Length)
			}
			ip.size += packEntrySize(b)
			ip.data = ip.data || b.Type == DataBlob
			ip.tree = ip.tree || b.Type == TreeBlob
			blobs = append(blobs, PackedBlob{BlobHandle: BlobHandle{ID: b.ID, Type: b.Type}, Pack: p.ID,
				Offset: b.Offset, Length: b.Length, UncompressedLength: b.UncompressedLength})
		}
		c.packs[p.ID] = ip
	}
	idx.AddLoaded(blobs)
}

// reportIndexHints warns about harmless redundancy: blobs stored twice and
// packs that mix data and tree blobs (restic never writes those).
func (c *Checker) reportIndexHints() {
	dups, example := 0, ""
	s := c.idx.sorted
	for i := 1; i < len(s); i++ {
		if s[i].id == s[i-1].id && s[i].typ == s[i-1].typ && (i < 2 || s[i-2].id != s[i].id || s[i-2].typ != s[i].typ) {
			if dups == 0 {
				example = fmt.Sprintf("%v blob %s", s[i].typ, s[i].id.Str())
			}
			dups++
		}
	}
	if dups > 0 {
		c.reportf(SevWarning, "%s stored more than once (e.g. %s); harmless, `cairn prune` removes the extra copies", plural(dups, "blob is", "blobs are"), example)
	}
	var mixed []ID
	for id, ip := range c.packs {
		if ip.data && ip.tree {
			mixed = append(mixed, id)
		}
	}
	if len(mixed) > 0 {
		c.reportf(SevWarning, "%s both data and tree blobs (e.g. pack %s); harmless", plural(len(mixed), "pack holds", "packs hold"), slices.MinFunc(mixed, compareID).Str())
	}
}

func compareID(a, b ID) int { return strings.Compare(string(a[:]), string(b[:])) }

func sortedIDs[V any](m map[ID]V) []ID {
	return slices.SortedFunc(maps.Keys(m), compareID)
}

// CheckPacks lists the pack files and compares them with the index: every
// indexed pack must exist with the size the index implies; packs no index
// names are reported as unused. Call it after LoadIndex.
func (c *Checker) CheckPacks(ctx context.Context) error {
	if err := c.r.List(ctx, PackFile, func(id ID, size int64) error {
		c.files[id] = size
		return nil
	}); err != nil {
		return fmt.Errorf("check: list packs: %w", err)
	}
	for _, id := range sortedIDs(c.packs) {
		ip := c.packs[id]
		size, ok := c.files[id]
		switch {
		case !ok:
			c.reportf(SevError, "pack %s is missing, but the index lists %d blobs in it", id.Str(), ip.blobs)
		case size != ip.size:
			c.reportf(SevError, "pack %s: size is %d bytes, but the index implies %d (the pack is truncated or damaged)", id.Str(), size, ip.size)
		}
	}
	var unused []string
	for _, id := range sortedIDs(c.files) {
		if _, ok := c.packs[id]; !ok {
			unused = append(unused, id.Str())
		}
	}
	if len(unused) > 0 {
		c.reportf(SevWarning, "%s (in no index: %s), e.g. left by an interrupted backup; `cairn prune` removes them", plural(len(unused), "unused pack", "unused packs"), abbreviate(unused, 3))
	}
	return nil
}

// plural prefixes n to the singular or plural phrase.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// abbreviate joins the first n names and says how many more there are.
func abbreviate(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(" and %d more", len(names)-n)
}

// CheckLocks warns about stale and unreadable lock files.
func (c *Checker) CheckLocks(ctx context.Context) error {
	var ids []ID
	if err := c.r.List(ctx, LockFile, func(id ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		return fmt.Errorf("check: list locks: %w", err)
	}
	now := Now()
	for _, id := range ids {
		var l LockJSON
		err := c.r.LoadJSONUnpacked(ctx, LockFile, id, &l)
		switch {
		case IsNotExist(err):
			// released meanwhile
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.reportf(SevWarning, "lock %s cannot be read: %v", id.Str(), err)
		case l.Stale(now):
			c.reportf(SevWarning, "stale %v (lock %s); `cairn unlock` removes it", &l, id.Str())
		}
	}
	return nil
}

// DataPacks returns the indexed packs that exist, sorted by ID: the packs
// ReadPacks can verify. Call it after CheckPacks.
func (c *Checker) DataPacks() []ID {
	var out []ID
	for _, id := range sortedIDs(c.packs) {
		if _, ok := c.files[id]; ok {
			out = append(out, id)
		}
	}
	return out
}

// PackFileSize is the size of a listed pack file, 0 if it does not exist.
func (c *Checker) PackFileSize(id ID) int64 { return c.files[id] }

// SelectPacks picks the packs a --read-data-subset reads: "" is all of them;
// "n/m" is the n-th of m groups, grouped by pack ID so that runs with
// n = 1..m together read every pack exactly once; "p%" is a random p percent
// (at least one pack when p > 0).
func SelectPacks(packs []ID, subset string) ([]ID, error) {
	subset = strings.TrimSpace(subset)
	bad := func(why string) error {
		return fmt.Errorf("invalid read-data subset %q: %s; use \"n/m\" (e.g. \"1/5\") or \"p%%\" (e.g. \"10%%\")", subset, why)
	}
	switch {
	case subset == "":
		return slices.Clone(packs), nil
	case strings.HasSuffix(subset, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(subset, "%"), 64)
		if err != nil || !(p > 0 && p <= 100) {
			return nil, bad("the percentage must be above 0 and at most 100")
		}
		k := int(math.Ceil(float64(len(packs)) * p / 100))
		var out []ID
		for _, i := range rand.Perm(len(packs))[:k] {
			out = append(out, packs[i])
		}
		slices.SortFunc(out, compareID)
		return out, nil
	}
	ns, ms, ok := strings.Cut(subset, "/")
	n, err1 := strconv.ParseUint(ns, 10, 32)
	m, err2 := strconv.ParseUint(ms, 10, 32)
	if !ok || err1 != nil || err2 != nil || n < 1 || n > m {
		return nil, bad("n and m must be whole numbers with 1 <= n <= m")
	}
	var out []ID
	for _, id := range packs {
		if uint64(binary.BigEndian.Uint32(id[:4]))%m == n-1 {
			out = append(out, id)
		}
	}
	return out, nil
}

// ReadProgress receives progress of ReadPacks; either function may be nil.
// They are called from several goroutines.
type ReadProgress struct {
	Bytes func(n int64) // pack bytes read
	Pack  func()        // one pack done
}

// ReadPacks reads each pack in full with a few workers and verifies it: the
// hash of its bytes must be its name, its header must decrypt and agree with
// the index, and every blob must decrypt, decompress and hash to its ID.
// Memory per worker is bounded by the largest blob, not the pack size.
// The returned error is only ctx's.
func (c *Checker) ReadPacks(ctx context.Context, packs []ID, workers int, prog ReadProgress) error {
	workers = max(1, min(workers, len(packs)))
	// Workers, not one goroutine per pack, so that each reuses its buffers.
	// A damaged pack is reported by readPack and the others go on.
	work := make(chan ID)
	var g errgroup.Group
	for range workers {
		g.Go(func() error {
			var bufs packBufs
			for id := range work {
				c.readPack(ctx, id, &bufs, prog.Bytes)
				if ctx.Err() == nil && prog.Pack != nil {
					prog.Pack()
				}
			}
			return nil
		})
	}
feed:
	for _, id := range packs {
		select {
		case work <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	_ = g.Wait() // never fails: problems go to the report
	return ctx.Err()
}

// hashingReader hashes and counts what passes through it.
type hashingReader struct {
	rd    io.Reader
	h     io.Writer
	n     int64
	bytes func(int64)
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.rd.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	if h.bytes != nil && n > 0 {
		h.bytes(int64(n))
	}
	return n, err
}

// packBufs are one worker's reusable buffers for a stored blob and its plaintext.
type packBufs struct{ raw, plain []byte }

// readPack verifies one pack, reporting what is wrong. The header is read
// first (a small ranged read) so the blobs can be decoded while the pack
// streams through the hash.
func (c *Checker) readPack(ctx context.Context, id ID, bufs *packBufs, bytes func(int64)) {
	size := c.files[id]
	hdr, hdrErr := c.r.ReadPackHeader(ctx, id, size)
	if ctx.Err() != nil {
		return
	}
	rd, err := c.r.be.Load(ctx, Handle{Type: PackFile, Name: id.String()}, 0, 0)
	if err != nil {
		if ctx.Err() == nil {
			c.reportf(SevError, "pack %s cannot be read: %v", id.Str(), err)
		}
		return
	}
	defer rd.Close()
	sum := sha256.New()
	src := &hashingReader{rd: rd, h: sum, bytes: bytes}
	for _, pb := range hdr { // ParsePackHeader returns them in offset order, back to back
		bufs.raw = slices.Grow(bufs.raw[:0], int(pb.Length))[:pb.Length]
		if _, err := io.ReadFull(src, bufs.raw); err != nil {
			if ctx.Err() == nil {
				c.reportf(SevError, "pack %s cannot be read at offset %d: %v", id.Str(), pb.Offset, err)
			}
			return
		}
		plain, err := c.r.DecodeBlob(pb, bufs.raw, bufs.plain)
		if err != nil {
			c.reportf(SevError, "pack %s: %v blob %s at offset %d is damaged: %v", id.Str(), pb.Type, pb.ID.Str(), pb.Offset, err)
			continue
		}
		bufs.plain = plain
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		if ctx.Err() == nil {
			c.reportf(SevError, "pack %s cannot be read: %v", id.Str(), err)
		}
		return
	}
	if ID(sum.Sum(nil)) != id {
		c.reportf(SevError, "pack %s: content does not match its ID (damaged)", id.Str())
	}
	if hdrErr != nil {
		c.reportf(SevError, "pack %s: header is damaged: %v", id.Str(), hdrErr)
		return
	}
	c.compareHeader(id, hdr)
}

// compareHeader checks that the pack header and the index describe the same
// blobs at the same places.
func (c *Checker) compareHeader(id ID, hdr []PackedBlob) {
	matched, extra, example := 0, 0, ""
	for _, pb := range hdr {
		if slices.ContainsFunc(c.idx.Lookup(pb.BlobHandle), func(e PackedBlob) bool {
			return e.Pack == id && e.Offset == pb.Offset && e.Length == pb.Length && e.UncompressedLength == pb.UncompressedLength
		}) {
			matched++
			continue
		}
		if extra == 0 {
			example = fmt.Sprintf("%v blob %s at offset %d", pb.Type, pb.ID.Str(), pb.Offset)
		}
		extra++
	}
	if extra > 0 {
		c.reportf(SevError, "pack %s: header lists %d blobs the index does not have there (e.g. %s); `cairn repair index` rebuilds the index", id.Str(), extra, example)
	}
	if ip := c.packs[id]; ip != nil && ip.blobs > matched {
		c.reportf(SevError, "pack %s: the index lists %d blobs in it that its header does not have; `cairn repair index` rebuilds the index", id.Str(), ip.blobs-matched)
	}
}
