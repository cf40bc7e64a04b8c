package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// problems collects what a Checker reports.
type problems struct {
	mu            sync.Mutex
	errors, warns []string
}

func (p *problems) add(sev Severity, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if strings.Contains(msg, "\n") {
		panic("multi-line message: " + msg)
	}
	if sev == SevError {
		p.errors = append(p.errors, msg)
	} else {
		p.warns = append(p.warns, msg)
	}
}

// has reports whether one message contains all of parts.
func has(msgs []string, parts ...string) bool {
	return slices.ContainsFunc(msgs, func(m string) bool {
		for _, p := range parts {
			if !strings.Contains(m, p) {
				return false
			}
		}
		return true
	})
}

// fillRepo stores data and tree blobs in several packs and flushes.
func fillRepo(t *testing.T, r *Repository) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 30; i++ {
		b := make([]byte, 90_000)
		if i%3 == 0 {
			for j := range b {
				b[j] = byte(j % 7) // compressible in version 2
			}
			binary.LittleEndian.PutUint32(b, uint32(i))
		} else {
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		}
		if _, _, _, err := r.SaveBlob(ctx, DataBlob, b, ID{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		tree := []byte(`{"nodes":[{"name":"f` + string(rune('a'+i)) + `","type":"file","content":[]}]}` + "\n")
		if _, _, _, err := r.SaveBlob(ctx, TreeBlob, tree, ID{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func reopen(t *testing.T, dir string) *Repository {
	t.Helper()
	be, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(context.Background(), be, "secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runChecker runs every check on a freshly opened repository.
func runChecker(t *testing.T, dir string, readData bool) (*problems, *Checker) {
	t.Helper()
	ctx := context.Background()
	p := &problems{}
	c := NewChecker(reopen(t, dir), p.add)
	if err := c.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckPacks(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckLocks(ctx); err != nil {
		t.Fatal(err)
	}
	if readData {
		var packs, bytes int64
		var mu sync.Mutex
		err := c.ReadPacks(ctx, c.DataPacks(), 3, ReadProgress{
			Bytes: func(n int64) { mu.Lock(); bytes += n; mu.Unlock() },
			Pack:  func() { mu.Lock(); packs++; mu.Unlock() },
		})
		if err != nil {
			t.Fatal(err)
		}
		var want int64
		for _, id := range c.DataPacks() {
			want += c.PackFileSize(id)
		}
		if packs != int64(len(c.DataPacks())) || bytes != want {
			t.Errorf("progress: %d packs, %d bytes; want %d, %d", packs, bytes, len(c.DataPacks()), want)
		}
	}
	return p, c
}

func packPath(dir string, id ID) string {
	return filepath.Join(dir, "data", id.String()[:2], id.String())
}

// packOf returns a pack holding blobs of type t, and one blob in it.
func packOf(t *testing.T, r *Repository, typ BlobType) PackedBlob {
	t.Helper()
	var found PackedBlob
	r.Index().Each(func(pb PackedBlob) bool {
		if pb.Type == typ {
			found = pb
			return false
		}
		return true
	})
	if found.Pack.IsNull() {
		t.Fatalf("no %v pack", typ)
	}
	return found
}

func modifyFile(t *testing.T, path string, fn func([]byte) []byte) {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil { // stored files are read-only
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(buf), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCheckerClean(t *testing.T) {
	for _, version := range []int{1, 2} {
		r, dir := newTestRepo(t, version)
		fillRepo(t, r)
		p, c := runChecker(t, dir, true)
		if len(p.errors)+len(p.warns) > 0 {
			t.Fatalf("version %d: clean repository: errors %q, warnings %q", version, p.errors, p.warns)
		}
		packs, blobs := c.Stats()
		files := 0
		_ = r.List(context.Background(), PackFile, func(ID, int64) error { files++; return nil })
		if packs != files || packs < 3 || blobs != 35 {
			t.Errorf("version %d: stats %d packs (%d files), %d blobs", version, packs, files, blobs)
		}
	}
}

func TestCheckerDamage(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		readData bool
		damage   func(t *testing.T, r *Repository, dir string) string // returns the name to look for
		errs     [][]string                                           // each: parts one error message must contain
		warns    [][]string
		noErrors bool
	}{
		{name: "flipped data byte, no read-data", noErrors: true,
			damage: func(t *testing.T, r *Repository, dir string) string {
				pb := packOf(t, r, DataBlob)
				modifyFile(t, packPath(dir, pb.Pack), func(b []byte) []byte { b[pb.Offset+pb.Length/2] ^= 1; return b })
				return pb.Pack.Str()
			}},
		{name: "flipped data byte", readData: true,
			damage: func(t *testing.T, r *Repository, dir string) string {
				pb := packOf(t, r, DataBlob)
				modifyFile(t, packPath(dir, pb.Pack), func(b []byte) []byte { b[pb.Offset+pb.Length/2] ^= 1; return b })
				return pb.Pack.Str()
			},
			errs: [][]string{{"pack NAME: content does not match its ID (damaged)"}, {"pack NAME", "blob", "is damaged"}}},
		{name: "flipped header byte", readData: true,
			damage: func(t *testing.T, r *Repository, dir string) string {
				pb := packOf(t, r, TreeBlob)
				modifyFile(t, packPath(dir, pb.Pack), func(b []byte) []byte { b[len(b)-10] ^= 1; return b })
				return pb.Pack.Str()
			},
			errs: [][]string{{"pack NAME: content does not match"}, {"pack NAME: header is damaged"}}},
		{name: "deleted pack",
			damage: func(t *testing.T, r *Repository, dir string) string {
				pb := packOf(t, r, DataBlob)
				if err := os.Remove(packPath(dir, pb.Pack)); err != nil {
					t.Fatal(err)
				}
				return pb.Pack.Str()
			},
			errs: [][]string{{"pack NAME is missing"}}},
		{name: "truncated pack", readData: true,
			damage: func(t *testing.T, r *Repository, dir string) string {
				pb := packOf(t, r, DataBlob)
				modifyFile(t, packPath(dir, pb.Pack), func(b []byte) []byte { return b[:len(b)-1] })
				return pb.Pack.Str()
			},
			errs: [][]string{{"pack NAME: size is", "index implies"}, {"pack NAME: content does not match"}}},
		{name: "truncated index file",
			damage: func(t *testing.T, r *Repository, dir string) string {
				var id ID
				_ = r.List(ctx, IndexFile, func(i ID, _ int64) error { id = i; return nil })
				modifyFile(t, filepath.Join(dir, "index", id.String()), func(b []byte) []byte { return b[:len(b)/2] })
				return id.Str()
			},
			errs:  [][]string{{"index file NAME cannot be read", "cairn repair index"}},
			warns: [][]string{{"unused packs", "cairn prune"}}},
		{name: "unused pack", readData: true, noErrors: true,
			damage: func(t *testing.T, r *Repository, dir string) string {
				pw := NewPackWriter(DataBlob, 1000)
				data := []byte("orphan")
				pw.Add(BlobHandle{ID: Hash(data), Type: DataBlob}, r.Key().Seal(nil, data), 0)
				buf, id, _ := pw.Finish(r.Key())
				if err := r.Backend().Save(ctx, Handle{Type: PackFile, Name: id.String()}, bytes.NewReader(buf), int64(len(buf))); err != nil {
					t.Fatal(err)
				}
				return id.Str()
			},
			warns: [][]string{{"1 unused pack (in no index: NAME)", "interrupted backup", "cairn prune"}}},
		{name: "pack in two index files", noErrors: true,
			damage: func(t *testing.T, r *Repository, dir string) string {
				var id ID
				_ = r.List(ctx, IndexFile, func(i ID, _ int64) error { id = i; return nil })
				buf, err := r.LoadUnpacked(ctx, IndexFile, id)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.SaveUnpacked(ctx, IndexFile, buf); err != nil {
					t.Fatal(err)
				}
				return ""
			},
			warns: [][]string{{"listed in more than one index file", "cairn repair index"}}},
		{name: "index disagrees with pack header", readData: true,
			damage: func(t *testing.T, r *Repository, dir string) string {
				// Swap two equally long blobs in the index: sizes still agree,
				// only reading the pack header shows the lie.
				var id ID
				_ = r.List(ctx, IndexFile, func(i ID, _ int64) error { id = i; return nil })
				buf, err := r.LoadUnpacked(ctx, IndexFile, id)
				if err != nil {
					t.Fatal(err)
				}
				ij, err := DecodeIndex(buf)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range ij.Packs {
					for i := 1; i < len(p.Blobs); i++ {
						a, b := &p.Blobs[i-1], &p.Blobs[i]
						if a.Length == b.Length && a.UncompressedLength == b.UncompressedLength {
							a.ID, b.ID = b.ID, a.ID
							if _, err := r.SaveJSONUnpacked(ctx, IndexFile, ij); err != nil {
								t.Fatal(err)
							}
							if err := r.Backend().Remove(ctx, Handle{Type: IndexFile, Name: id.String()}); err != nil {
								t.Fatal(err)
							}
							return p.ID.Str()
						}
					}
				}
				t.Fatal("no two blobs of equal length")
				return ""
			},
			errs: [][]string{{"pack NAME: header lists 2 blobs the index does not have there"}, {"pack NAME: the index lists 2 blobs in it that its header does not have"}}},
		{name: "stale lock", noErrors: true,
			damage: func(t *testing.T, r *Repository, dir string) string {
				id, err := r.SaveJSONUnpacked(ctx, LockFile, &LockJSON{Time: time.Now().Add(-2 * time.Hour), Hostname: "elsewhere", PID: 1})
				if err != nil {
					t.Fatal(err)
				}
				return id.Str()
			},
			warns: [][]string{{"stale", "lock NAME", "cairn unlock"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, dir := newTestRepo(t, 2)
			fillRepo(t, r)
			name := tt.damage(t, r, dir)
			p, _ := runChecker(t, dir, tt.readData)
			t.Logf("errors: %q\nwarnings: %q", p.errors, p.warns)
			for _, want := range tt.errs {
				parts := slices.Clone(want)
				for i := range parts {
					parts[i] = strings.ReplaceAll(parts[i], "NAME", name)
				}
				if !has(p.errors, parts...) {
					t.Errorf("no error containing %q", parts)
				}
			}
			for _, want := range tt.warns {
				parts := slices.Clone(want)
				for i := range parts {
					parts[i] = strings.ReplaceAll(parts[i], "NAME", name)
				}
				if !has(p.warns, parts...) {
					t.Errorf("no warning containing %q", parts)
				}
			}
			if tt.noErrors && len(p.errors) > 0 {
				t.Errorf("unexpected errors")
			}
			if len(tt.warns) == 0 && len(p.warns) > 0 {
				t.Errorf("unexpected warnings")
			}
		})
	}
}

func TestSelectPacks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var packs []ID
	for i := 0; i < 200; i++ {
		var id ID
		for j := range id {
			id[j] = byte(rng.Uint32())
		}
		packs = append(packs, id)
	}
	all, err := SelectPacks(packs, "")
	if err != nil || len(all) != len(packs) {
		t.Fatalf("all: %d, %v", len(all), err)
	}
	for _, m := range []int{1, 2, 3, 7} {
		seen := map[ID]int{}
		for n := 1; n <= m; n++ {
			sub, err := SelectPacks(packs, strconv.Itoa(n)+"/"+strconv.Itoa(m))
			if err != nil {
				t.Fatal(err)
			}
			if m > 1 && (len(sub) == 0 || len(sub) == len(packs)) {
				t.Errorf("%d/%d selects %d of %d packs", n, m, len(sub), len(packs))
			}
			again, _ := SelectPacks(packs, strconv.Itoa(n)+"/"+strconv.Itoa(m))
			if !slices.Equal(sub, again) {
				t.Errorf("%d/%d is not deterministic", n, m)
			}
			for _, id := range sub {
				seen[id]++
			}
		}
		for _, id := range packs {
			if seen[id] != 1 {
				t.Fatalf("m=%d: pack %s selected %d times", m, id.Str(), seen[id])
			}
		}
	}
	for spec, want := range map[string]int{"10%": 20, "0.1%": 1, "100%": 200, "33.3%": 67} {
		sub, err := SelectPacks(packs, spec)
		if err != nil || len(sub) != want {
			t.Errorf("%s: %d packs, %v; want %d", spec, len(sub), err, want)
		}
		if len(slices.Compact(slices.Clone(sub))) != len(sub) {
			t.Errorf("%s: duplicates", spec)
		}
	}
	for _, bad := range []string{"0/2", "3/2", "1/0", "x/2", "1/", "2", "0%", "101%", "-5%", "abc%"} {
		if _, err := SelectPacks(packs, bad); err == nil || !strings.Contains(err.Error(), "read-data subset") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}
