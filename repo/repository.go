// Package repo implements restic's repository format (version 1 and 2) on
// top of a small storage Backend.
package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/crypto"

	"golang.org/x/sync/errgroup"
)

// Options tune how a repository is written.
type Options struct {
	PackSize    int // target pack size in bytes (default 16 MiB)
	Compression Compression
	ReadOnly    bool
	Uploaders   int // parallel pack uploads (default 2)
	KDF         crypto.KDFParams
	// Warn, when set, is told about problems that do not stop an
	// operation (a key file that is skipped).
	Warn func(msg string)
	// Prefetch lists locks, snapshots and index files while Open derives
	// the key. The first Lock, the first listing of snapshots and
	// LoadIndex then start from them: a round trip each saved over a
	// network. Only for commands to which a snapshot listing taken before
	// their lock is as good as one taken after (a backup choosing its
	// parent); never for one that removes data by what it lists. The
	// index read from the early listing is checked against one taken after
	// the lock (see LoadIndex and LockAhead).
	Prefetch bool
}

// DefaultPackSize is restic's default target pack size.
const DefaultPackSize = 16 << 20

// maxKeyTries bounds how many key files Open tries with one password: each
// try costs a full scrypt run.
const maxKeyTries = 20

// ErrWrongPassword is returned by Open when no key file opens.
var ErrWrongPassword = errors.New("wrong password or no key found")

// Repository is an opened, decrypted repository.
type Repository struct {
	be    Backend
	key   *crypto.Key
	keyID ID
	cfg   Config
	opts  Options
	idx   *Index

	// idxMu serializes index loading; idxLoaded holds the index files
	// whose entries are in idx.
	idxMu        sync.Mutex
	idxLoaded    map[ID]bool
	idxLoadedFor *Index // the index idxLoaded describes
	// idxEarly are index files loaded while a lock taken ahead was not
	// confirmed yet; awaitLocks checks they are still there.
	idxEarly []ID

	pk     *packer
	pkOnce sync.Once

	locksMu sync.Mutex
	locks   map[*Lock]bool // held by this Repository
	// lockFiles holds the lock files read or written so far: a lock
	// file's name is the hash of its content, so it never needs reading
	// twice.
	lockFiles map[ID]*LockJSON

	pre *prefetch // listings sent by Open (Options.Prefetch)
}

func (o *Options) defaults() {
	if o.PackSize <= 0 {
		o.PackSize = DefaultPackSize
	}
	if o.Uploaders <= 0 {
		o.Uploaders = 2
	}
	if o.KDF.N == 0 {
		o.KDF = crypto.DefaultKDFParams
	}
}

// CurrentUser returns the user name and host name recorded in keys, locks
// and snapshots.
func CurrentUser() (username, hostname string) {
	if u, err := user.Current(); err == nil {
		username = u.Username
	}
	hostname, _ = os.Hostname()
	return username, hostname
}

// Init writes a new key and config to an empty backend.
func Init(ctx context.Context, be Backend, password string, version int, opts Options) (*Repository, error) {
	opts.defaults()
	if opts.ReadOnly {
		return nil, fmt.Errorf("init: %w", ErrReadOnly)
	}
	if _, err := be.Stat(ctx, Handle{Type: ConfigFile}); err == nil {
		return nil, fmt.Errorf("init: repository at %s already has a config file", be.Location())
	}
	cfg, err := NewConfig(version)
	if err != nil {
		return nil, err
	}
	r := &Repository{be: be, key: crypto.NewRandomKey(), cfg: cfg, opts: opts, idx: NewIndex()}
	if _, err := r.AddKey(ctx, password); err != nil {
		return nil, err
	}
	plain, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if err := r.saveRaw(ctx, Handle{Type: ConfigFile}, r.key.Seal(nil, plain)); err != nil {
		return nil, fmt.Errorf("init: write config: %w", err)
	}
	return r, nil
}

// Open finds a key that the password opens and reads the config. The
// config and the key files are read at once: over a network, one round
// trip before scrypt instead of three.
func Open(ctx context.Context, be Backend, password string, opts Options) (*Repository, error) {
	opts.defaults()
	r := &Repository{be: be, opts: opts, idx: NewIndex()}
	var cfgBuf []byte
	var cfgErr error
	cfgDone := make(chan struct{})
	go func() {
		defer close(cfgDone)
		cfgBuf, cfgErr = LoadAll(ctx, be, Handle{Type: ConfigFile})
	}()
	if opts.Prefetch {
		r.pre = startPrefetch(ctx, be)
	}
	keyErr := r.openKey(ctx, password)
	<-cfgDone
	r.pre.wait()
	// A missing config says more than a missing key (no repository).
	if cfgErr != nil {
		if IsNotExist(cfgErr) {
			return nil, fmt.Errorf("no repository at %s (no config file): %w; create one with `cairn init`", be.Location(), ErrNotExist)
		}
		return nil, fmt.Errorf("open repository %s: %w", be.Location(), cfgErr)
	}
	if keyErr != nil {
		return nil, keyErr
	}
	// scrypt's tens of MiB are garbage now; collected at once they are
	// reused, instead of setting a heap goal that lets the index load and
	// the work after it grow the process by as much again.
	runtime.GC()
	plain, err := r.key.Open(nil, cfgBuf)
	if err != nil {
		return nil, fmt.Errorf("decrypt config: %w", err)
	}
	if plain, err = decodeUnpacked(plain); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	if err := json.Unmarshal(plain, &r.cfg); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	if err := r.cfg.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// warnf reports a problem that does not stop the operation.
func (r *Repository) warnf(format string, args ...any) {
	if r.opts.Warn != nil {
		r.opts.Warn(fmt.Sprintf(format, args...))
	}
}

// AddKey stores a new key file for password, encrypting the master key.
func (r *Repository) AddKey(ctx context.Context, password string) (ID, error) {
	if r.opts.ReadOnly {
		return ID{}, fmt.Errorf("add key: %w", ErrReadOnly)
	}
	username, hostname := CurrentUser()
	kf, err := crypto.NewKeyFile(password, r.key, r.opts.KDF, username, hostname)
	if err != nil {
		return ID{}, fmt.Errorf("new key: %w", err)
	}
	buf, err := json.Marshal(kf)
	if err != nil {
		return ID{}, err
	}
	id := Hash(buf)
	if err := r.saveRaw(ctx, Handle{Type: KeyFile, Name: id.String()}, buf); err != nil {
		return ID{}, fmt.Errorf("save key: %w", err)
	}
	if r.keyID.IsNull() {
		r.keyID = id
	}
	return id, nil
}

func (r *Repository) Backend() Backend         { return r.be }
func (r *Repository) Config() Config           { return r.cfg }
func (r *Repository) Key() *crypto.Key         { return r.key }
func (r *Repository) KeyID() ID                { return r.keyID }
func (r *Repository) Index() *Index            { return r.idx }
func (r *Repository) ReadOnly() bool           { return r.opts.ReadOnly }
func (r *Repository) Compression() Compression { return r.opts.Compression }

func (r *Repository) saveRaw(ctx context.Context, h Handle, buf []byte) error {
	if r.opts.ReadOnly {
		return fmt.Errorf("save %v: %w", h, ErrReadOnly)
	}
	if h.Type != LockFile {
		if err := r.awaitLocks(ctx); err != nil {
			return fmt.Errorf("save %v: %w", h, err)
		}
		if err := r.checkLocks(); err != nil {
			return fmt.Errorf("save %v: %w", h, err)
		}
	}
	return r.be.Save(ctx, h, bytes.NewReader(buf), int64(len(buf)))
}

// SaveUnpacked encrypts (and in version 2 compresses) a snapshot, index or
// lock file and stores it under its hash.
func (r *Repository) SaveUnpacked(ctx context.Context, t FileType, plain []byte) (ID, error) {
	sealed := r.key.Seal(nil, encodeUnpacked(r.cfg.Version, t, plain))
	id := Hash(sealed)
	if err := r.saveRaw(ctx, Handle{Type: t, Name: id.String()}, sealed); err != nil {
		return ID{}, err
	}
	return id, nil
}

// SaveJSONUnpacked marshals v and saves it with SaveUnpacked.
func (r *Repository) SaveJSONUnpacked(ctx context.Context, t FileType, v any) (ID, error) {
	buf, err := json.Marshal(v)
	if err != nil {
		return ID{}, fmt.Errorf("encode %v: %w", t, err)
	}
	return r.SaveUnpacked(ctx, t, buf)
}

// LoadUnpacked loads, verifies and decrypts a file saved with SaveUnpacked.
func (r *Repository) LoadUnpacked(ctx context.Context, t FileType, id ID) ([]byte, error) {
	h := Handle{Type: t, Name: id.String()}
	buf, err := LoadAll(ctx, r.be, h)
	if err != nil {
		return nil, err
	}
	return r.openUnpacked(h, id, buf)
}

// openUnpacked checks, decrypts (in place: buf is overwritten) and
// decompresses a loaded file.
func (r *Repository) openUnpacked(h Handle, id ID, buf []byte) ([]byte, error) {
	if Hash(buf) != id {
		return nil, fmt.Errorf("load %v: content does not match its name (the file is damaged)", h)
	}
	plain, err := r.key.Open(buf[:0], buf)
	if err != nil {
		return nil, fmt.Errorf("load %v: %w", h, err)
	}
	plain, err = decodeUnpacked(plain)
	if err != nil {
		return nil, fmt.Errorf("load %v: %w", h, err)
	}
	return plain, nil
}

// LoadJSONUnpacked loads a file and unmarshals it into v.
func (r *Repository) LoadJSONUnpacked(ctx context.Context, t FileType, id ID, v any) error {
	buf, err := r.LoadUnpacked(ctx, t, id)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(buf, v); err != nil {
		return fmt.Errorf("decode %v/%v: %w", t, id.Str(), err)
	}
	return nil
}

// List calls fn with the ID and size of every valid-named file of type t.
//
// With Options.Prefetch, the first listing of snapshots is the one Open
// sent.
func (r *Repository) List(ctx context.Context, t FileType, fn func(ID, int64) error) error {
	if t == SnapshotFile {
		if files := r.pre.take(ctx, t); files != nil {
			for _, fi := range files {
				if id, err := ParseID(fi.Name); err == nil {
					if err := fn(id, fi.Size); err != nil {
						return err
					}
				}
			}
			return nil
		}
	}
	return r.be.List(ctx, t, func(fi FileInfo) error {
		id, err := ParseID(fi.Name)
		if err != nil {
			return nil // foreign file; not ours to judge here
		}
		return fn(id, fi.Size)
	})
}

// ErrAmbiguous and ErrNoMatch are returned by FindID.
var (
	ErrAmbiguous = errors.New("ambiguous ID prefix")
	ErrNoMatch   = errors.New("no matching ID")
)

// FindID resolves a (prefix of an) ID among the files of type t.
func (r *Repository) FindID(ctx context.Context, t FileType, prefix string) (ID, error) {
	prefix = strings.ToLower(prefix)
	var match ID
	n := 0
	err := r.List(ctx, t, func(id ID, _ int64) error {
		if strings.HasPrefix(id.String(), prefix) {
			match = id
			n++
		}
		return nil
	})
	if err != nil {
		return ID{}, err
	}
	switch {
	case n == 0:
		return ID{}, fmt.Errorf("%w: no %v matches %q", ErrNoMatch, t, prefix)
	case n > 1:
		return ID{}, fmt.Errorf("%w: %q matches %d %v files; give more characters", ErrAmbiguous, prefix, n, t)
	}
	return match, nil
}

// LoadIndex reads every index file into memory, in parallel, replacing
// the in-memory index.
//
// With a listing prefetched by Open (Options.Prefetch), its files are
// loaded while the index is listed again: that listing is the one that
// counts, taken after the caller's lock. If a prefetched file is gone from
// it (a prune or repair replaced the index meanwhile) everything is loaded
// again from the new listing; files only added meanwhile are loaded too.
// Under a lock taken ahead and not yet confirmed (LockAhead) nothing is
// listed again now: the lock's own index listing is checked before the
// first write (awaitLocks).
func (r *Repository) LoadIndex(ctx context.Context) error {
	r.idxMu.Lock()
	defer r.idxMu.Unlock()
	var idx *Index
	var loaded []ID
	early := r.pendingLocks()
	pre := r.pre.take(ctx, IndexFile)
	if early && pre != nil {
		// Checked once the lock is confirmed (awaitLocks), not now. A
		// file that fails to load is tried again from a new listing.
		var err error
		if idx, loaded, err = r.loadListed(ctx, pre); err != nil {
			idx = nil
		}
	} else if pre != nil {
		idx, loaded = r.loadIndexAhead(ctx, pre)
	}
	if idx == nil {
		ids, sizes, err := r.listIndexFiles(ctx)
		if err != nil {
			return err
		}
		idx = NewIndex()
		if loaded, err = r.loadIndexFiles(ctx, idx, ids, sizes); err != nil {
			return err
		}
	}
	idx.Sort()
	r.idx = idx
	r.idxLoaded = map[ID]bool{}
	r.idxLoadedFor = idx
	for _, id := range loaded {
		r.idxLoaded[id] = true
	}
	// A load from a listing taken under a confirmed lock replaces any
	// index read early: nothing left to check.
	r.idxEarly = nil
	if early {
		r.idxEarly = loaded
	}
	r.announceTreePacks(idx, true)
	return nil
}

// loadListed loads the index files of a listing into a new index.
func (r *Repository) loadListed(ctx context.Context, files []FileInfo) (*Index, []ID, error) {
	ids, sizes := listedIDs(files)
	idx := NewIndex()
	loaded, err := r.loadIndexFiles(ctx, idx, ids, sizes)
	return idx, loaded, err
}

func listedIDs(files []FileInfo) ([]ID, map[ID]int64) {
	var ids []ID
	sizes := map[ID]int64{}
	for _, fi := range files {
		if id, err := ParseID(fi.Name); err == nil {
			ids = append(ids, id)
			sizes[id] = fi.Size
		}
	}
	return ids, sizes
}

// loadIndexAhead loads the index files of a prefetched listing while
// listing them again, and returns the index when the new listing still
// has every one of them (and the files it added are loaded too); nil when
// LoadIndex must start over from a listing of its own.
func (r *Repository) loadIndexAhead(ctx context.Context, pre []FileInfo) (*Index, []ID) {
	type listed struct {
		ids   []ID
		sizes map[ID]int64
		err   error
	}
	fresh := make(chan listed, 1)
	go func() {
		ids, sizes, err := r.listIndexFiles(ctx)
		fresh <- listed{ids, sizes, err}
	}()
	ids, sizes := listedIDs(pre)
	idx := NewIndex()
	loaded, err := r.loadIndexFiles(ctx, idx, ids, sizes)
	now := <-fresh
	if err != nil || now.err != nil {
		return nil, nil
	}
	for _, id := range ids {
		if _, ok := now.sizes[id]; !ok {
			return nil, nil
		}
	}
	had := make(map[ID]bool, len(ids))
	for _, id := range ids {
		had[id] = true
	}
	added := slices.DeleteFunc(now.ids, func(id ID) bool { return had[id] })
	more, err := r.loadIndexFiles(ctx, idx, added, now.sizes)
	if err != nil {
		return nil, nil
	}
	return idx, append(loaded, more...)
}

// LoadNewIndexes adds the index files that this Repository has not loaded
// yet (by LoadIndex or an earlier call) to its index and returns how many
// it added. A file counts as loaded only once its entries are in, so one
// written or damaged meanwhile is tried again by the next call. Long-running
// readers (the FUSE mount) call it to see new snapshots' data.
func (r *Repository) LoadNewIndexes(ctx context.Context) (int, error) {
	r.idxMu.Lock()
	defer r.idxMu.Unlock()
	early := r.pendingLocks()
	ids, sizes, err := r.listIndexFiles(ctx)
	if err != nil {
		return 0, err
	}
	idx, done := r.idx, r.idxLoaded
	fresh := r.idxLoadedFor != r.idx || done == nil
	if fresh {
		// The index was built elsewhere (Init, prune, check, repair) and
		// what it holds is unknown: build a new one, installed once loaded.
		idx, done = NewIndex(), map[ID]bool{}
	}
	todo := slices.DeleteFunc(ids, func(id ID) bool { return done[id] })
	loaded, err := r.loadIndexFiles(ctx, idx, todo, sizes)
	if len(loaded) > 0 {
		idx.Sort()
	}
	for _, id := range loaded {
		done[id] = true
	}
	if early {
		r.idxEarly = append(r.idxEarly, loaded...)
	}
	if fresh {
		// Only here is r.idx replaced: readers use it concurrently.
		r.idx, r.idxLoaded, r.idxLoadedFor = idx, done, idx
	}
	if len(loaded) > 0 {
		r.announceTreePacks(idx, false)
	}
	return len(loaded), err
}

func (r *Repository) listIndexFiles(ctx context.Context) ([]ID, map[ID]int64, error) {
	var ids []ID
	sizes := map[ID]int64{}
	if err := r.List(ctx, IndexFile, func(id ID, size int64) error {
		ids = append(ids, id)
		sizes[id] = size
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("list index files: %w", err)
	}
	return ids, sizes, nil
}

// loadSized reads a whole file of the size List reported into a buffer of
// exactly that size (io.ReadAll doubles its way there, leaving garbage
// about twice the file). A file longer than listed fails the hash check.
func loadSized(ctx context.Context, be Backend, h Handle, size int64) ([]byte, error) {
	if size <= 0 || size > 1<<30 {
		return LoadAll(ctx, be, h)
	}
	rd, err := be.Load(ctx, h, 0, 0)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	buf := make([]byte, size)
	if _, err := io.ReadFull(rd, buf); err != nil {
		return nil, fmt.Errorf("load %v: %w", h, err)
	}
	return buf, nil
}

// indexLoads is how many index files are read at once. Over a network the
// round trip, not decoding, is what a load costs, so more are in flight than
// there are CPUs; each holds one file's (compressed) bytes. Decompressing
// and decoding, which hold several times that, are done by at most
// GOMAXPROCS at once: more would only add to the peak of memory.
const indexLoads = 16

// loadIndexFiles adds the entries of the index files ids to idx, in
// parallel, and returns the files it loaded; the error names the first
// that failed. A damaged file does not stop the others: LoadNewIndexes
// keeps what did load and tries the rest again next time.
func (r *Repository) loadIndexFiles(ctx context.Context, idx *Index, ids []ID, sizes map[ID]int64) ([]ID, error) {
	var mu sync.Mutex
	var firstErr error
	var loaded []ID
	var files []*indexFile
	var g errgroup.Group
	g.SetLimit(indexLoads)
	decoding := make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, id := range ids {
		g.Go(func() error {
			h := Handle{Type: IndexFile, Name: id.String()}
			buf, err := loadSized(ctx, r.be, h, sizes[id])
			var f indexFile // escapes: kept in files
			if err == nil {
				decoding <- struct{}{}
				buf, err = r.openUnpacked(h, id, buf)
				if err == nil {
					err = decodeIndexFile(buf, &f)
				}
				<-decoding
			}
			mu.Lock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("load index %v: %w", id.Str(), err)
				}
			} else {
				loaded = append(loaded, id)
				files = append(files, &f)
			}
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait() // never fails: the first error is in firstErr
	// Added once all are decoded, the index grows once to its final size.
	idx.addFiles(files)
	if firstErr != nil {
		return loaded, fmt.Errorf("%w (run `cairn check`; `cairn repair index` rebuilds the index from the packs)", firstErr)
	}
	return loaded, nil
}

// LookupBlob returns the locations of a blob.
func (r *Repository) LookupBlob(t BlobType, id ID) []PackedBlob {
	return r.idx.Lookup(BlobHandle{ID: id, Type: t})
}

// HasBlob reports whether the index knows the blob.
func (r *Repository) HasBlob(t BlobType, id ID) bool {
	return r.idx.Has(BlobHandle{ID: id, Type: t})
}

// ErrBlobNotFound is returned for blobs the index does not know.
var ErrBlobNotFound = errors.New("blob not found in index")

// DecodeBlob turns a blob's stored bytes into its verified plaintext,
// appended to dst. It overwrites raw.
func (r *Repository) DecodeBlob(pb PackedBlob, raw, dst []byte) ([]byte, error) {
	if len(raw) != int(pb.Length) {
		return nil, fmt.Errorf("blob %v in pack %v: %w: got %d bytes, want %d", pb.ID.Str(), pb.Pack.Str(), ErrCorruptPack, len(raw), pb.Length)
	}
	var plain []byte
	var err error
	if pb.IsCompressed() {
		// Decrypt in place (raw is ours) and decompress into dst.
		plain, err = r.key.Open(raw[:0], raw)
		if err == nil {
			plain, err = decompress(dst[:0], plain)
		}
	} else {
		plain, err = r.key.Open(dst[:0], raw)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %v in pack %v: %w: %w", pb.ID.Str(), pb.Pack.Str(), ErrCorruptPack, err)
	}
	if Hash(plain) != pb.ID {
		return nil, fmt.Errorf("blob %v in pack %v: %w: content hash mismatch", pb.ID.Str(), pb.Pack.Str(), ErrCorruptPack)
	}
	return plain, nil
}

// Close releases the backend. It flushes nothing: call Flush first when
// writing; packs not flushed by then (a failed backup) are discarded.
func (r *Repository) Close() error {
	if r.pk != nil {
		r.pk.mu.Lock()
		for t, pf := range r.pk.cur {
			pf.discard()
			delete(r.pk.cur, t)
		}
		// Packs being written to temp files on disk are waited for, so that
		// a failed backup leaves none behind (an upload after a failure
		// stores nothing); a remote upload needs no temp file.
		if _, ok := r.be.(fileSaver); ok {
			for r.pk.pending > 0 {
				r.pk.uploaded.Wait()
			}
		}
		r.pk.mu.Unlock()
		r.pk.slots.close()
	}
	return r.be.Close()
}

// Now is overridable in tests.
var Now = time.Now
