package repo

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/crypto"
	"golang.org/x/sync/errgroup"
)

// maxKeyFileSize skips key files no key could need: a forged one might
// be gigabytes.
const maxKeyFileSize = 64 << 10

// keyLoads is how many key files are read at once.
const keyLoads = 8

// keyBudget bounds the scrypt work (N*r*p summed) one Open spends on a
// password: two keys of the largest allowed cost.
var keyBudget uint64 = 2 * crypto.MaxKDFWork

// KeyCache is implemented by backends that keep copies of the key files
// they served (repo/cache). Open derives the key of a cached key file
// while it lists the keys, and uses it only if the listing has it: a key
// removed from the repository opens nothing.
type KeyCache interface {
	// CachedKeys names the key files held for this repository; Load
	// serves them locally, checked against their names.
	CachedKeys() []string
}

type keyCandidate struct {
	name string
	kf   crypto.KeyFile
}

// keyTries is one Open's key derivations: what they cost, which files
// were tried, and the key found.
type keyTries struct {
	password string
	spent    uint64
	n        int
	tried    map[string]bool
	key      *crypto.Key
	name     string
	given    int // candidates not tried: over the budget
}

// openKey tries the key files that can be opened at all, cheapest first,
// within keyBudget. Key files that are unreadable, malformed or out of
// bounds are skipped with a warning: one bad key file must not lock out
// the holders of the others. Cached key files are tried while the keys
// are listed (see KeyCache).
func (r *Repository) openKey(ctx context.Context, password string) error {
	type listed struct {
		files []FileInfo
		err   error
	}
	lc := make(chan listed, 1)
	go func() {
		var l listed
		l.err = r.be.List(ctx, KeyFile, func(fi FileInfo) error {
			l.files = append(l.files, fi)
			return nil
		})
		lc <- l
	}()
	kt := &keyTries{password: password, tried: map[string]bool{}}
	if kc, ok := r.be.(KeyCache); ok {
		var files []FileInfo
		for _, name := range kc.CachedKeys() {
			files = append(files, FileInfo{Name: name})
		}
		// Problems with cached copies are not worth a warning: the
		// listed files are judged again below.
		cands, _ := r.keyCandidates(ctx, files, nil)
		if err := kt.try(ctx, cands, nil); err != nil {
			return err
		}
	}
	l := <-lc
	if l.err != nil {
		return fmt.Errorf("list keys: %w", l.err)
	}
	if len(l.files) == 0 {
		return fmt.Errorf("repository %s has no key files", r.be.Location())
	}
	if kt.key != nil && slices.ContainsFunc(l.files, func(fi FileInfo) bool { return fi.Name == kt.name }) {
		r.key = kt.key
		r.keyID, _ = ParseID(kt.name)
		return nil
	}
	skipped := 0
	skip := func(name string, format string, args ...any) {
		skipped++
		r.warnf("skipping key file %s: %s", name, fmt.Sprintf(format, args...))
	}
	cands, err := r.keyCandidates(ctx, l.files, skip)
	if err != nil {
		return err
	}
	cands = slices.DeleteFunc(cands, func(c keyCandidate) bool { return kt.tried[c.name] })
	kt.key = nil
	if err := kt.try(ctx, cands, skip); err != nil {
		return err
	}
	if kt.given > 0 {
		r.warnf("gave up after trying %d key files (the scrypt budget is spent); %d more were not tried", kt.n, kt.given)
	}
	if kt.key != nil {
		r.key = kt.key
		r.keyID, _ = ParseID(kt.name)
		return nil
	}
	if skipped > 0 {
		return fmt.Errorf("%w for repository %s (%d key files were skipped, see the warnings)", ErrWrongPassword, r.be.Location(), skipped)
	}
	return fmt.Errorf("%w for repository %s", ErrWrongPassword, r.be.Location())
}

// keyCandidates reads the key files (all at once: each is a round trip
// over a network) and returns those that could open, cheapest first;
// skip, when set, is told about the others in listing order.
func (r *Repository) keyCandidates(ctx context.Context, files []FileInfo, skip func(name, format string, args ...any)) ([]keyCandidate, error) {
	if skip == nil {
		skip = func(string, string, ...any) {}
	}
	bufs := make([][]byte, len(files))
	errs := make([]error, len(files))
	var g errgroup.Group
	g.SetLimit(keyLoads)
	for i, fi := range files {
		if fi.Size > maxKeyFileSize {
			continue
		}
		g.Go(func() error {
			bufs[i], errs[i] = LoadAll(ctx, r.be, Handle{Type: KeyFile, Name: fi.Name})
			return nil
		})
	}
	_ = g.Wait() // never fails: the errors are in errs
	var cands []keyCandidate
	for i, fi := range files {
		if fi.Size > maxKeyFileSize {
			skip(fi.Name, "%d bytes is too large for a key file", fi.Size)
			continue
		}
		buf, err := bufs[i], errs[i]
		if err != nil {
			if IsNotExist(err) {
				continue // removed meanwhile
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			skip(fi.Name, "%v", err)
			continue
		}
		c := keyCandidate{name: fi.Name}
		if err := json.Unmarshal(buf, &c.kf); err != nil {
			skip(fi.Name, "not a key file (%v)", err)
			continue
		}
		if err := c.kf.Check(); err != nil {
			skip(fi.Name, "%v", err)
			continue
		}
		cands = append(cands, c)
	}
	slices.SortFunc(cands, func(a, b keyCandidate) int {
		if c := cmp.Compare(a.kf.Params().Work(), b.kf.Params().Work()); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return cands, nil
}

// try derives the keys of cands in order until one opens, within the
// budget left.
func (kt *keyTries) try(ctx context.Context, cands []keyCandidate, skip func(name, format string, args ...any)) error {
	for i, c := range cands {
		if kt.n == maxKeyTries || kt.spent+c.kf.Params().Work() > keyBudget {
			kt.given = len(cands) - i
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		kt.spent += c.kf.Params().Work()
		kt.n++
		k, err := c.kf.Open(kt.password)
		if errors.Is(err, crypto.ErrWrongPassword) {
			kt.tried[c.name] = true // not again for the same file
			continue
		}
		if err != nil {
			if skip != nil {
				skip(c.name, "%v", err)
			}
			continue
		}
		kt.key, kt.name = k, c.name
		return nil
	}
	return nil
}
