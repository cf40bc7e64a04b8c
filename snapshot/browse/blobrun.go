package browse

import (
	"bytes"
	"cmp"
	"context"
	"slices"

	"github.com/cairn-backup/cairn/repo"
)

// Loading runs of blobs: the blobs of a file mostly lie one after the other
// in a pack, and over a network every backend read costs a round trip, so
// the reader loads the blobs it needs next as runs (repo.LoadBlobRun), one
// ranged read each, instead of one read per blob.

// maxRunBytes bounds the stored bytes of one run, so that the first blob of
// a run does not wait behind a long transfer of blobs not needed yet.
const maxRunBytes = 8 << 20

// loadRunLocked registers a load for each of ids (whose copies locs are a
// run of one pack) and starts one backend read for all of them. Each
// waiter wakes as soon as its own blob is decoded. token says the run holds
// a prefetch token, given back when it ends.
func (c *BlobCache) loadRunLocked(ids []repo.ID, locs []repo.PackedBlob, token bool) {
	lds := make([]*blobLoad, len(ids))
	for k, id := range ids {
		lds[k] = &blobLoad{done: make(chan struct{})}
		c.loads[id] = lds[k]
	}
	go func() {
		if token {
			defer func() { <-c.prefetch }()
		}
		bufs := make([][]byte, len(locs))
		for k, pb := range locs {
			bufs[k] = c.getBuf(pb.LoadBufSize())
		}
		// Detached from any caller, like a single load.
		ctx := context.Background()
		c.r.LoadBlobRun(ctx, locs, bufs, func(k int, data []byte, err error) {
			buf := bufs[k]
			switch {
			case err != nil:
				// This copy is damaged or the read broke: load the blob on
				// its own, trying every copy the index lists.
				c.putBuf(buf)
				buf, data, err = c.load(ctx, ids[k])
			case !within(data, buf):
				c.putBuf(buf)
				buf = data
			}
			c.finish(ids[k], lds[k], buf, data, err)
		})
	}()
}

// missingLocked reports whether blob j of the file is neither cached, nor
// loading, nor read to its end by this reader already.
func (f *FileReader) missingLocked(j int) bool {
	if f.done(j) {
		return false
	}
	id := f.content[j]
	if _, ok := f.cache.items[id]; ok {
		return false
	}
	_, ok := f.cache.loads[id]
	return !ok
}

// run is blobs of one file to load with one backend read: their IDs and
// copies, in the order of the pack.
type run struct {
	ids  []repo.ID
	locs []repo.PackedBlob
	has  bool // holds the blob a read waits for
}

// runsLocked groups the missing blobs among js and fill (indexes into the
// content) into runs. The archiver writes a file's blobs into a pack in the
// order its workers finish them, so blobs are sorted by pack and offset,
// not by their place in the file, and cut where the gap between two exceeds
// repo.MaxRunGap or a run would exceed maxRunBytes. Blobs of fill (further
// ahead) only fill gaps: a run neither starts nor ends with one, so the
// window's blobs of one pack region come in one read instead of being cut
// at the blobs of the next window. want is the blob a read waits for (-1
// for none); its run comes first.
func (f *FileReader) runsLocked(js, fill []int, want int) []run {
	type item struct {
		j    int
		pb   repo.PackedBlob
		fill bool
	}
	var items []item
	seen := map[repo.ID]bool{}
	for k, j := range append(js, fill...) {
		id := f.content[j]
		if seen[id] || !f.missingLocked(j) {
			continue
		}
		ls := f.cache.r.LookupBlob(repo.DataBlob, id)
		if len(ls) == 0 {
			continue // not in the index: acquire reports it
		}
		seen[id] = true
		items = append(items, item{j, ls[0], k >= len(js)})
	}
	slices.SortFunc(items, func(a, b item) int {
		if c := bytes.Compare(a.pb.Pack[:], b.pb.Pack[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.pb.Offset, b.pb.Offset)
	})
	var runs []run
	var cur []item
	flush := func() {
		for len(cur) > 0 && cur[len(cur)-1].fill {
			cur = cur[:len(cur)-1]
		}
		if len(cur) == 0 {
			return
		}
		rn := run{}
		for _, it := range cur {
			rn.ids = append(rn.ids, it.pb.ID)
			rn.locs = append(rn.locs, it.pb)
			rn.has = rn.has || it.j == want
		}
		runs = append(runs, rn)
		cur = nil
	}
	for _, it := range items {
		if len(cur) > 0 {
			prev, first := cur[len(cur)-1].pb, cur[0].pb
			prevEnd := uint64(prev.Offset) + uint64(prev.Length)
			if it.pb.Pack != first.Pack || uint64(it.pb.Offset) < prevEnd || uint64(it.pb.Offset)-prevEnd > repo.MaxRunGap ||
				uint64(it.pb.Offset)+uint64(it.pb.Length)-uint64(first.Offset) > maxRunBytes {
				flush()
			}
		}
		if len(cur) == 0 && it.fill {
			continue
		}
		cur = append(cur, it)
	}
	flush()
	slices.SortStableFunc(runs, func(a, b run) int {
		switch {
		case a.has == b.has:
			return 0
		case a.has:
			return -1
		}
		return 1
	})
	return runs
}
