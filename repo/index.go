package repo

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
)

// indexEntry is one blob location. 52 bytes; with the sorted-slice layout
// below the index costs about that per blob (plus 32 bytes per pack).
type indexEntry struct {
	id     ID
	pack   uint32 // position in Index.packs
	offset uint32
	length uint32
	ulen   uint32
	typ    BlobType
}

func cmpEntry(a, b *indexEntry) int {
	if c := bytes.Compare(a.id[:], b.id[:]); c != 0 {
		return c
	}
	return int(a.typ) - int(b.typ)
}

// byEntry sorts entries in place: slices.SortFunc would pass each pair of
// 52-byte entries to the comparison by value. IDs are hashes, so their
// first 8 bytes almost always decide.
type byEntry []indexEntry

func (s byEntry) Len() int      { return len(s) }
func (s byEntry) Swap(i, j int) { s[i], s[j] = s[j], s[i] }
func (s byEntry) Less(i, j int) bool {
	a, b := &s[i], &s[j]
	if x, y := binary.BigEndian.Uint64(a.id[:8]), binary.BigEndian.Uint64(b.id[:8]); x != y {
		return x < y
	}
	return cmpEntry(a, b) < 0
}

// Index maps blobs to their pack locations. Loaded entries live in one
// sorted slice (binary search, no per-entry pointers); entries added during
// this run sit in a small map until Merge.
type Index struct {
	mu      sync.RWMutex
	packs   []ID
	packNum map[ID]uint32
	sorted  []indexEntry
	// Entries added in this run: a list, and where the last of each blob
	// is in it (no allocation per blob). addedDups: some blob was added
	// twice, so Lookup must look through the list.
	added     map[BlobHandle]int32
	addedList []indexEntry
	addedDups bool
	dirty     bool // sorted has unsorted tail
	// buckets[b] is where the entries whose IDs begin with the bucketBits
	// bits b start in sorted (IDs are hashes, so evenly spread): a lookup
	// searches a few entries instead of the whole slice.
	buckets    []uint32
	bucketBits uint
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{packNum: map[ID]uint32{}, added: map[BlobHandle]int32{}}
}

func (idx *Index) packNumber(pack ID) uint32 {
	n, ok := idx.packNum[pack]
	if !ok {
		n = uint32(len(idx.packs))
		idx.packs = append(idx.packs, pack)
		idx.packNum[pack] = n
	}
	return n
}

func (idx *Index) entry(pb PackedBlob) indexEntry {
	return indexEntry{id: pb.ID, typ: pb.Type, pack: idx.packNumber(pb.Pack),
		offset: pb.Offset, length: pb.Length, ulen: pb.UncompressedLength}
}

func (idx *Index) packed(e *indexEntry) PackedBlob {
	return PackedBlob{BlobHandle: BlobHandle{ID: e.id, Type: e.typ}, Pack: idx.packs[e.pack],
		Offset: e.offset, Length: e.length, UncompressedLength: e.ulen}
}

// Grow reserves room for n more loaded entries.
func (idx *Index) Grow(n int) {
	idx.mu.Lock()
	idx.sorted = slices.Grow(idx.sorted, n)
	idx.mu.Unlock()
}

// AddLoaded adds entries read from an index file. Call Sort once all are in.
func (idx *Index) AddLoaded(blobs []PackedBlob) {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	idx.sorted = slices.Grow(idx.sorted, len(blobs))
	for _, pb := range blobs {
		idx.sorted = append(idx.sorted, idx.entry(pb))
	}
	idx.dirty = true
}

// addFiles adds the entries of decoded index files, growing the sorted
// part once. Call Sort once all are in.
func (idx *Index) addFiles(files []*indexFile) {
	const unset = math.MaxUint32
	n := 0
	for _, f := range files {
		n += len(f.entries)
	}
	idx.mu.Lock()
	defer idx.mu.Unlock()
	if len(files) == 1 && len(idx.sorted) == 0 && cap(files[0].entries) <= n+n/8+1024 {
		idx.sorted = files[0].entries[:0] // the file's entries become the index: no copy
	} else {
		idx.sorted = slices.Grow(idx.sorted, n)
	}
	for _, f := range files {
		remap := make([]uint32, len(f.packs))
		for i := range remap {
			remap[i] = unset
		}
		for _, e := range f.entries {
			p := remap[e.pack]
			if p == unset { // numbered on first use, as entry does: packs without blobs get none
				p = idx.packNumber(f.packs[e.pack].id)
				remap[e.pack] = p
			}
			e.pack = p
			idx.sorted = append(idx.sorted, e)
		}
		f.entries = nil // garbage as soon as copied
	}
	idx.dirty = true
}

// Sort makes loaded entries searchable.
func (idx *Index) Sort() {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	idx.sortLocked()
}

func (idx *Index) sortLocked() {
	if cap(idx.sorted) > len(idx.sorted)+len(idx.sorted)/8+1024 {
		// append's doubling may have left up to half the array unused
		idx.sorted = append(make([]indexEntry, 0, len(idx.sorted)), idx.sorted...)
	}
	if idx.dirty || idx.buckets == nil {
		sort.Sort(byEntry(idx.sorted))
		idx.dirty = false
		idx.bucketize()
	}
}

// bucketize builds buckets for the sorted entries: about two entries a
// bucket, at most 2^22 buckets (16 MiB).
func (idx *Index) bucketize() {
	bits := uint(0)
	for bits < 22 && 2<<bits < len(idx.sorted) {
		bits++
	}
	n := 1 << bits
	idx.bucketBits = bits
	idx.buckets = slices.Grow(idx.buckets[:0], n+1)[:n+1]
	b := 0
	for i := range idx.sorted {
		for top := int(idx.sorted[i].id.top(bits)); b <= top; b++ {
			idx.buckets[b] = uint32(i)
		}
	}
	for ; b <= n; b++ {
		idx.buckets[b] = uint32(len(idx.sorted))
	}
}

// top returns the first bits bits of id.
func (id ID) top(bits uint) uint64 {
	return binary.BigEndian.Uint64(id[:8]) >> (64 - bits)
}

// Add records a blob written in this run.
func (idx *Index) Add(pb PackedBlob) {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	if _, ok := idx.added[pb.BlobHandle]; ok {
		idx.addedDups = true
	}
	idx.added[pb.BlobHandle] = int32(len(idx.addedList))
	idx.addedList = append(idx.addedList, idx.entry(pb))
}

// Merge moves blobs added in this run into the sorted part.
func (idx *Index) Merge() {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	idx.sorted = append(slices.Grow(idx.sorted, len(idx.addedList)), idx.addedList...)
	idx.addedList = idx.addedList[:0]
	clear(idx.added)
	idx.addedDups = false
	idx.dirty = true
	idx.sortLocked()
}

func (idx *Index) find(h BlobHandle) (lo, hi int) {
	key := indexEntry{id: h.ID, typ: h.Type}
	kx := binary.BigEndian.Uint64(key.id[:8])
	start, end := 0, len(idx.sorted)
	if idx.buckets != nil { // nil: never sorted, so empty or sorted as loaded
		b := key.id.top(idx.bucketBits)
		start, end = int(idx.buckets[b]), int(idx.buckets[b+1])
	}
	lo = start + sort.Search(end-start, func(i int) bool {
		e := &idx.sorted[start+i]
		if x := binary.BigEndian.Uint64(e.id[:8]); x != kx {
			return x > kx
		}
		return cmpEntry(e, &key) >= 0
	})
	hi = lo
	for hi < len(idx.sorted) && idx.sorted[hi].id == h.ID && idx.sorted[hi].typ == h.Type {
		hi++
	}
	return lo, hi
}

// Lookup returns every known location of h (a blob may be stored twice).
func (idx *Index) Lookup(h BlobHandle) []PackedBlob {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	var out []PackedBlob
	if at, ok := idx.added[h]; ok {
		if !idx.addedDups {
			out = append(out, idx.packed(&idx.addedList[at]))
		} else {
			for i := range idx.addedList {
				if e := &idx.addedList[i]; e.id == h.ID && e.typ == h.Type {
					out = append(out, idx.packed(e))
				}
			}
		}
	}
	if idx.dirty {
		for i := range idx.sorted {
			if idx.sorted[i].id == h.ID && idx.sorted[i].typ == h.Type {
				out = append(out, idx.packed(&idx.sorted[i]))
			}
		}
		return out
	}
	lo, hi := idx.find(h)
	for i := lo; i < hi; i++ {
		out = append(out, idx.packed(&idx.sorted[i]))
	}
	return out
}

// Has reports whether h is stored anywhere.
func (idx *Index) Has(h BlobHandle) bool {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	if _, ok := idx.added[h]; ok {
		return true
	}
	if idx.dirty {
		return slices.ContainsFunc(idx.sorted, func(e indexEntry) bool { return e.id == h.ID && e.typ == h.Type })
	}
	lo, hi := idx.find(h)
	return hi > lo
}

// Len is the number of entries (duplicates counted).
func (idx *Index) Len() int {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	return len(idx.sorted) + len(idx.addedList)
}

// Each calls fn for every entry, in no particular order, under a read lock.
func (idx *Index) Each(fn func(PackedBlob) bool) {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	for i := range idx.sorted {
		if !fn(idx.packed(&idx.sorted[i])) {
			return
		}
	}
	for i := range idx.addedList {
		if !fn(idx.packed(&idx.addedList[i])) {
			return
		}
	}
}

// Packs returns the set of packs that the index references.
func (idx *Index) Packs() map[ID]struct{} {
	out := map[ID]struct{}{}
	idx.Each(func(pb PackedBlob) bool { out[pb.Pack] = struct{}{}; return true })
	return out
}

// IndexJSON is the format of files under index/.
type IndexJSON struct {
	Supersedes IDs        `json:"supersedes,omitempty"`
	Packs      []PackJSON `json:"packs"`
}

// PackJSON lists the blobs of one pack.
type PackJSON struct {
	ID    ID         `json:"id"`
	Blobs []BlobJSON `json:"blobs"`
}

// BlobJSON is one blob entry in an index file.
type BlobJSON struct {
	ID                 ID       `json:"id"`
	Type               BlobType `json:"type"`
	Offset             uint32   `json:"offset"`
	Length             uint32   `json:"length"`
	UncompressedLength uint32   `json:"uncompressed_length,omitempty"`
}

// DecodeIndex parses an index file's plaintext. It accepts the legacy
// format (a bare array of packs) too. The result is what encoding/json
// gives (see indexdecode.go).
func DecodeIndex(buf []byte) (*IndexJSON, error) {
	var f indexFile
	if decodeIndexFast(buf, &f) == nil {
		return f.json(), nil
	}
	return decodeIndexJSON(buf)
}

// validate rejects blob entries without a type: the JSON decoder leaves a
// missing "type" as InvalidBlob, which no lookup finds and no index
// rewrite (prune, repair) can encode.
func (ij *IndexJSON) validate() error {
	for _, p := range ij.Packs {
		for _, b := range p.Blobs {
			if b.Type != DataBlob && b.Type != TreeBlob {
				return fmt.Errorf("decode index: blob %v in pack %v has no type", b.ID.Str(), p.ID.Str())
			}
		}
	}
	return nil
}

// Blobs flattens an index file into blob locations.
func (ij *IndexJSON) Blobs() []PackedBlob {
	n := 0
	for _, p := range ij.Packs {
		n += len(p.Blobs)
	}
	out := make([]PackedBlob, 0, n)
	for _, p := range ij.Packs {
		for _, b := range p.Blobs {
			out = append(out, PackedBlob{BlobHandle: BlobHandle{ID: b.ID, Type: b.Type}, Pack: p.ID,
				Offset: b.Offset, Length: b.Length, UncompressedLength: b.UncompressedLength})
		}
	}
	return out
}

// BuildIndexJSON groups blob locations by pack into index files of at most
// maxBlobs entries each (restic keeps index files below 8 MiB).
func BuildIndexJSON(blobs []PackedBlob, maxBlobs int) []*IndexJSON {
	byPack := map[ID][]PackedBlob{}
	var order []ID
	for _, b := range blobs {
		if _, ok := byPack[b.Pack]; !ok {
			order = append(order, b.Pack)
		}
		byPack[b.Pack] = append(byPack[b.Pack], b)
	}
	var out []*IndexJSON
	cur, n := &IndexJSON{}, 0
	for _, p := range order {
		bs := byPack[p]
		if n > 0 && n+len(bs) > maxBlobs {
			out = append(out, cur)
			cur, n = &IndexJSON{}, 0
		}
		pj := PackJSON{ID: p}
		for _, b := range bs {
			pj.Blobs = append(pj.Blobs, BlobJSON{ID: b.ID, Type: b.Type, Offset: b.Offset, Length: b.Length, UncompressedLength: b.UncompressedLength})
		}
		cur.Packs = append(cur.Packs, pj)
		n += len(bs)
	}
	if n > 0 {
		out = append(out, cur)
	}
	return out
}
