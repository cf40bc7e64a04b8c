package repo

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-backup/cairn/crypto"
)

// UnusedLimit is prune's --max-unused: how much unused data may stay in the
// repository, as a share of its size after pruning or in bytes.
type UnusedLimit struct {
	Unlimited bool
	IsPercent bool
	Percent   float64 // 0 <= Percent < 100
	Bytes     int64
}

// ParseUnusedLimit reads "5%", "100M", "0" or "unlimited".
func ParseUnusedLimit(s string) (UnusedLimit, error) {
	s = strings.TrimSpace(s)
	if s == "unlimited" {
		return UnusedLimit{Unlimited: true}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 || v > 100 || math.IsNaN(v) {
			return UnusedLimit{}, fmt.Errorf("invalid --max-unused %q: a percentage must be from 0%% to 100%%", s)
		}
		if v == 100 {
			return UnusedLimit{Unlimited: true}, nil
		}
		return UnusedLimit{IsPercent: true, Percent: v}, nil
	}
	n, err := ParseSize(s)
	if err != nil {
		return UnusedLimit{}, fmt.Errorf("invalid --max-unused %q: use a percentage (5%%), a size (200M) or \"unlimited\"", s)
	}
	return UnusedLimit{Bytes: n}, nil
}

// Max is the unused bytes allowed next to used bytes of used data: a
// percentage p means unused/(used+unused) <= p%.
func (l UnusedLimit) Max(used int64) int64 {
	switch {
	case l.Unlimited:
		return math.MaxInt64
	case l.IsPercent:
		return int64(float64(used) * l.Percent / (100 - l.Percent))
	}
	return l.Bytes
}

func (l UnusedLimit) String() string {
	switch {
	case l.Unlimited:
		return "unlimited"
	case l.IsPercent:
		return strconv.FormatFloat(l.Percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatInt(l.Bytes, 10) + " bytes"
}

// ParseSize reads a byte count with an optional binary suffix k, m, g or t
// (either case, optionally followed by "b" or "ib"): "512k", "1.5G", "200MiB".
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := 1.0
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsNaN(v) || v*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("invalid size %q: use a number of bytes with an optional suffix k, m, g or t (e.g. 500M)", s)
	}
	return int64(v * mult), nil
}

// PruneOptions tune which packs prune rewrites.
type PruneOptions struct {
	MaxUnused UnusedLimit
	// MaxRepackSize caps the bytes of packs read for repacking; < 0: no cap.
	MaxRepackSize int64
	// RepackSmall also rewrites packs below 80% of the target size, when
	// there are at least two of them.
	RepackSmall bool
	// PackSize is the target pack size; 0 means DefaultPackSize.
	PackSize int
}

// PruneInput is what prune knows about the repository: every index entry,
// the pack files present with their sizes, and the blobs snapshots use.
type PruneInput struct {
	Blobs     []PackedBlob
	PackFiles map[ID]int64
	Used      map[BlobHandle]struct{}
}

// PruneStats counts what a plan finds and would do. Blob sizes are their
// stored length plus their pack header entry.
type PruneStats struct {
	Packs          int   `json:"packs"`
	Blobs          int   `json:"blobs"`
	TotalSize      int64 `json:"total_size"` // all pack files
	UsedBlobs      int   `json:"used_blobs"`
	UsedSize       int64 `json:"used_size"`
	UnusedBlobs    int   `json:"unused_blobs"` // unreferenced or duplicate copies
	UnusedSize     int64 `json:"unused_size"`
	DuplicateBlobs int   `json:"duplicate_blobs"` // extra copies of used blobs (part of unused)

	KeepPacks      int   `json:"keep_packs"`
	KeepSize       int64 `json:"keep_size"`
	RepackPacks    int   `json:"repack_packs"`
	RepackSize     int64 `json:"repack_size"`  // bytes of the packs read
	RepackBlobs    int   `json:"repack_blobs"` // blobs copied into new packs
	RepackUsedSize int64 `json:"repack_used_size"`
	RemovePacks    int   `json:"remove_packs"` // packs with nothing used
	RemoveSize     int64 `json:"remove_size"`
	UnindexedPacks int   `json:"unindexed_packs"` // in no index
	UnindexedSize  int64 `json:"unindexed_size"`
	MissingPacks   int   `json:"missing_packs"` // indexed but absent: dropped from the index
	DamagedPacks   int   `json:"damaged_packs"` // not as indexed, nothing needed from them

	UnusedAfter int64 `json:"unused_after"` // unused bytes left in kept packs
	SizeAfter   int64 `json:"size_after"`   // estimated repository pack bytes afterwards
}

// PrunePlan says what happens to every pack.
type PrunePlan struct {
	Keep      []ID // stay as they are
	Repack    []ID // used blobs copied to new packs, then deleted
	Remove    []ID // indexed, nothing in them is needed
	Unindexed []ID // named by no index file
	Damaged   []ID // size differs from the index; every needed blob has a good copy elsewhere
	Missing   []ID // indexed but absent

	// Copy lists the blob copies to move out of Repack packs.
	Copy []PackedBlob
	// KeepBlobs are the index entries of Keep packs: the new index holds
	// these and the new packs.
	KeepBlobs []PackedBlob
	Stats     PruneStats
}

// ErrPruneUnsafe marks a repository prune refuses to touch: some data that
// snapshots need cannot be found intact.
var ErrPruneUnsafe = errors.New("prune cannot proceed safely")

type packState struct {
	id           ID
	size         int64 // file size (0 when missing)
	blobs        []PackedBlob
	missing      bool
	damaged      bool
	complete     bool // every blob is needed by some snapshot
	used, unused int
	usedSize     int64
	unusedSize   int64
	mixed        bool         // data and tree blobs in one pack
	chosen       []PackedBlob // the used copies in this pack
}

func entrySize(b PackedBlob) int64 {
	if b.IsCompressed() {
		return int64(b.Length) + headerEntrySizeCompressed
	}
	return int64(b.Length) + headerEntrySize
}

func cmpIDs(a, b ID) int { return strings.Compare(string(a[:]), string(b[:])) }

// PlanPrune decides, from the index, the pack files and the used blobs,
// which packs to keep, repack and delete. It fails with ErrPruneUnsafe when
// a used blob has no indexed copy in an intact pack.
func PlanPrune(in PruneInput, o PruneOptions) (*PrunePlan, error) {
	packs := map[ID]*packState{}
	for _, b := range in.Blobs {
		p := packs[b.Pack]
		if p == nil {
			p = &packState{id: b.Pack}
			packs[b.Pack] = p
		}
		p.blobs = append(p.blobs, b)
	}
	var plan PrunePlan
	st := &plan.Stats
	for id, size := range in.PackFiles {
		st.Packs++
		st.TotalSize += size
		if packs[id] == nil {
			plan.Unindexed = append(plan.Unindexed, id)
			st.UnindexedPacks++
			st.UnindexedSize += size
		}
	}
	for _, p := range packs {
		p.blobs = dedupEntries(p.blobs, &p.damaged)
		size, ok := in.PackFiles[p.id]
		p.size, p.missing = size, !ok
		want := int64(crypto.Extension + 4)
		types := map[BlobType]bool{}
		p.complete = true
		for _, b := range p.blobs {
			want += entrySize(b)
			types[b.Type] = true
			if _, used := in.Used[b.BlobHandle]; !used {
				p.complete = false
			}
		}
		p.mixed = len(types) > 1
		if ok && size != want {
			p.damaged = true
		}
		st.Blobs += len(p.blobs)
	}
	if err := chooseCopies(in, packs, st); err != nil {
		return nil, err
	}
	classify(&plan, packs, o)
	return &plan, nil
}

// dedupEntries drops entries listed twice for the same place (a pack named
// by two index files); two different blobs at one offset mark the pack bad.
func dedupEntries(bs []PackedBlob, bad *bool) []PackedBlob {
	slices.SortFunc(bs, func(a, b PackedBlob) int { return cmp.Compare(a.Offset, b.Offset) })
	out := bs[:0]
	for i, b := range bs {
		if i > 0 && b.Offset == bs[i-1].Offset {
			if b != bs[i-1] {
				*bad = true
			}
			continue
		}
		out = append(out, b)
	}
	return out
}

// chooseCopies picks, for every used blob, the one copy that stays used:
// preferably in a pack whose blobs are all needed (it can stay as it is),
// else in the pack with the most used bytes. It counts used and unused
// blobs per pack and fails when a used blob has no intact copy.
func chooseCopies(in PruneInput, packs map[ID]*packState, st *PruneStats) error {
	for _, p := range packs {
		for _, b := range p.blobs {
			if _, ok := in.Used[b.BlobHandle]; ok && !p.missing && !p.damaged {
				p.usedSize += entrySize(b) // provisional: all copies, for ranking
			}
		}
	}
	copies := map[BlobHandle][]*packState{}
	for _, p := range packs {
		if p.missing || p.damaged {
			continue
		}
		for _, b := range p.blobs {
			if _, ok := in.Used[b.BlobHandle]; ok {
				copies[b.BlobHandle] = append(copies[b.BlobHandle], p)
			}
		}
	}
	chosen := map[BlobHandle]ID{}
	var noIndex, noGood []BlobHandle
	indexed := map[BlobHandle]bool{}
	for _, p := range packs {
		for _, b := range p.blobs {
			indexed[b.BlobHandle] = true
		}
	}
	for h := range in.Used {
		cs := copies[h]
		if len(cs) == 0 {
			if indexed[h] {
				noGood = append(noGood, h)
			} else {
				noIndex = append(noIndex, h)
			}
			continue
		}
		best := slices.MinFunc(cs, func(a, b *packState) int {
			if a.complete != b.complete {
				if a.complete {
					return -1
				}
				return 1
			}
			if c := cmp.Compare(b.usedSize, a.usedSize); c != 0 {
				return c
			}
			return cmpIDs(a.id, b.id)
		})
		chosen[h] = best.id
	}
	if len(noIndex) > 0 {
		return fmt.Errorf("%w: %d blobs that snapshots use are in no index (e.g. %v); nothing was deleted: run `cairn repair index`, then `cairn check`", ErrPruneUnsafe, len(noIndex), minHandle(noIndex))
	}
	if len(noGood) > 0 {
		return fmt.Errorf("%w: %d blobs that snapshots use are only in missing or damaged packs (e.g. %v); nothing was deleted: run `cairn check --read-data` and `cairn repair index`", ErrPruneUnsafe, len(noGood), minHandle(noGood))
	}
	for _, p := range packs {
		p.usedSize = 0
		for _, b := range p.blobs {
			_, isUsed := in.Used[b.BlobHandle]
			switch {
			case isUsed && chosen[b.BlobHandle] == p.id && !p.missing && !p.damaged:
				p.used++
				p.usedSize += entrySize(b)
				p.chosen = append(p.chosen, b)
				chosen[b.BlobHandle] = ID{} // one copy per blob, even if listed twice
				st.UsedBlobs++
				st.UsedSize += entrySize(b)
			default:
				p.unused++
				p.unusedSize += entrySize(b)
				if !p.missing {
					if isUsed {
						st.DuplicateBlobs++
					}
					st.UnusedBlobs++
					st.UnusedSize += entrySize(b)
				}
			}
		}
	}
	return nil
}

func minHandle(hs []BlobHandle) BlobHandle {
	return slices.MinFunc(hs, func(a, b BlobHandle) int { return cmpIDs(a.ID, b.ID) })
}

// classify sorts the packs into keep, repack and remove, repacking the
// packs that waste most first until the unused data left is within the
// limit or the repack budget is spent.
func classify(plan *PrunePlan, packs map[ID]*packState, o PruneOptions) {
	st := &plan.Stats
	target := o.PackSize
	if target <= 0 {
		target = DefaultPackSize
	}
	small := func(p *packState) bool { return p.size < int64(target)*8/10 }
	var keep, forced, partial []*packState
	nSmall := 0
	for _, id := range slices.SortedFunc(mapKeys(packs), cmpIDs) {
		p := packs[id]
		switch {
		case p.missing:
			plan.Missing = append(plan.Missing, p.id)
			st.MissingPacks++
		case p.damaged:
			plan.Damaged = append(plan.Damaged, p.id)
			st.DamagedPacks++
		case p.used == 0:
			plan.Remove = append(plan.Remove, p.id)
			st.RemovePacks++
			st.RemoveSize += p.size
		case p.mixed:
			forced = append(forced, p)
		case p.unused > 0:
			partial = append(partial, p)
		default:
			keep = append(keep, p)
		}
		if !p.missing && !p.damaged && p.used > 0 && small(p) {
			nSmall++
		}
	}
	if o.RepackSmall && nSmall >= 2 {
		keep = slices.DeleteFunc(keep, func(p *packState) bool {
			if small(p) {
				forced = append(forced, p)
				return true
			}
			return false
		})
		partial = slices.DeleteFunc(partial, func(p *packState) bool {
			if small(p) {
				forced = append(forced, p)
				return true
			}
			return false
		})
	}
	// Most wasteful first: the highest share of unused bytes.
	slices.SortStableFunc(partial, func(a, b *packState) int {
		return cmp.Compare(float64(b.unusedSize)/float64(max(b.size, 1)), float64(a.unusedSize)/float64(max(a.size, 1)))
	})
	var unused int64
	for _, p := range slices.Concat(keep, forced, partial) {
		unused += p.unusedSize
	}
	maxUnused := o.MaxUnused.Max(st.UsedSize)
	budget := o.MaxRepackSize
	repack := func(p *packState) bool {
		if budget >= 0 && st.RepackSize+p.size > budget {
			return false
		}
		plan.Repack = append(plan.Repack, p.id)
		st.RepackPacks++
		st.RepackSize += p.size
		st.RepackBlobs += p.used
		st.RepackUsedSize += p.usedSize
		unused -= p.unusedSize
		return true
	}
	for _, p := range forced {
		if !repack(p) {
			keep = append(keep, p)
		}
	}
	for _, p := range partial {
		if unused <= maxUnused || !repack(p) {
			keep = append(keep, p)
		}
	}
	slices.SortFunc(keep, func(a, b *packState) int { return cmpIDs(a.id, b.id) })
	inKept := map[BlobHandle]bool{}
	for _, p := range keep {
		plan.Keep = append(plan.Keep, p.id)
		st.KeepPacks++
		st.KeepSize += p.size
		plan.KeepBlobs = append(plan.KeepBlobs, p.blobs...)
		for _, b := range p.blobs {
			inKept[b.BlobHandle] = true
		}
	}
	// Copy the chosen blobs out of repacked packs, unless a kept pack holds
	// another copy anyway (then that copy counts as used from now on).
	for _, id := range plan.Repack {
		for _, b := range packs[id].chosen {
			if inKept[b.BlobHandle] {
				unused -= entrySize(b)
				st.RepackBlobs--
				st.RepackUsedSize -= entrySize(b)
				continue
			}
			plan.Copy = append(plan.Copy, b)
			inKept[b.BlobHandle] = true
		}
	}
	st.UnusedAfter = unused
	st.SizeAfter = st.KeepSize + st.RepackUsedSize
}

func mapKeys[V any](m map[ID]V) func(func(ID) bool) {
	return func(yield func(ID) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
