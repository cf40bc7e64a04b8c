package repo

// TreePackCache is an optional interface of a Backend that keeps local
// copies of the packs holding tree blobs (repo/cache): every backup, find
// and restore reads those trees again, and over a network each read is a
// round trip. The Repository tells such a backend which packs those are,
// from its index and as it writes them; it knows nothing else of the cache.
type TreePackCache interface {
	// TreePacks names packs that hold tree blobs. With complete set, packs
	// is every such pack the repository's index lists, and local copies of
	// any other pack may be dropped.
	TreePacks(packs map[ID]struct{}, complete bool)
	// Evict drops the local copy of a pack from which a blob failed to
	// decode and reports whether there was one (then a retry reads the
	// backend's copy).
	Evict(pack ID) bool
}

// announceTreePacks tells a caching backend which packs hold trees.
func (r *Repository) announceTreePacks(idx *Index, complete bool) {
	tc, ok := r.be.(TreePackCache)
	if !ok {
		return
	}
	packs := map[ID]struct{}{}
	idx.Each(func(pb PackedBlob) bool {
		if pb.Type == TreeBlob {
			packs[pb.Pack] = struct{}{}
		}
		return true
	})
	tc.TreePacks(packs, complete)
}

// announceTreePack tells a caching backend that the pack about to be saved
// holds trees, so it keeps a copy: the next backup reads them as parents.
func (r *Repository) announceTreePack(id ID) {
	if tc, ok := r.be.(TreePackCache); ok {
		tc.TreePacks(map[ID]struct{}{id: {}}, false)
	}
}

// evictCached drops a caching backend's copy of pack; see TreePackCache.
func (r *Repository) evictCached(pack ID) bool {
	tc, ok := r.be.(TreePackCache)
	return ok && tc.Evict(pack)
}
