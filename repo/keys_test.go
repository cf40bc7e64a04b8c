package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/crypto"
)

// saveKeyFile stores a key file (any JSON) under its hash, as AddKey does.
func saveKeyFile(t *testing.T, be Backend, v any) string {
	t.Helper()
	var buf []byte
	switch v := v.(type) {
	case []byte:
		buf = v
	default:
		var err error
		if buf, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	id := Hash(buf).String()
	if err := be.Save(context.Background(), Handle{Type: KeyFile, Name: id}, strings.NewReader(string(buf)), int64(len(buf))); err != nil {
		t.Fatal(err)
	}
	return id
}

type warnings struct {
	mu    sync.Mutex
	lines []string
}

func (w *warnings) add(s string) { w.mu.Lock(); w.lines = append(w.lines, s); w.mu.Unlock() }

// One bad key file next to the valid one must not lock its owner out: each
// is skipped with a warning naming it, the valid key opens.
func TestOpenSkipsBadKeyFiles(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Init(ctx, be, "right", 2, Options{KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	good, err := LoadAll(ctx, be, Handle{Type: KeyFile, Name: r.KeyID().String()})
	if err != nil {
		t.Fatal(err)
	}
	var valid crypto.KeyFile
	if err := json.Unmarshal(good, &valid); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{} // key file -> what the warning must say
	forge := func(mod func(*crypto.KeyFile), want string) {
		kf := valid
		mod(&kf)
		bad[saveKeyFile(t, be, &kf)] = want
	}
	forge(func(k *crypto.KeyFile) { k.N = 1 << 40 }, "MiB")
	forge(func(k *crypto.KeyFile) { k.N, k.R = 1<<20, 8 }, "MiB") // 1 GiB
	forge(func(k *crypto.KeyFile) { k.P = 1 << 20 }, "too expensive")
	forge(func(k *crypto.KeyFile) { k.N = 1000 }, "power of two")
	forge(func(k *crypto.KeyFile) { k.KDF = "argon2id" }, "argon2id")
	forge(func(k *crypto.KeyFile) { k.Salt = nil }, "salt")
	bad[saveKeyFile(t, be, []byte(`{"kdf":"scrypt","N":`))] = "not a key file"
	bad[saveKeyFile(t, be, []byte(strings.Repeat(" ", 100<<10)))] = "too large"
	// A key of another password: tried, not warned about.
	other, err := crypto.NewKeyFile("other", r.Key(), testKDF, "", "")
	if err != nil {
		t.Fatal(err)
	}
	saveKeyFile(t, be, other)

	var w warnings
	start := time.Now()
	r2, err := Open(ctx, be, "right", Options{Warn: w.add})
	if err != nil {
		t.Fatalf("Open with a valid key among bad ones: %v", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("Open took %v", took)
	}
	if r2.KeyID() != r.KeyID() {
		t.Errorf("opened key %v, want %v", r2.KeyID().Str(), r.KeyID().Str())
	}
	if len(w.lines) != len(bad) {
		t.Errorf("%d warnings for %d bad key files:\n%s", len(w.lines), len(bad), strings.Join(w.lines, "\n"))
	}
	for name, want := range bad {
		found := false
		for _, l := range w.lines {
			if strings.Contains(l, name) && strings.Contains(l, want) && !strings.Contains(l, "\n") {
				found = true
			}
		}
		if !found {
			t.Errorf("no one-line warning naming key file %s and saying %q:\n%s", name[:8], want, strings.Join(w.lines, "\n"))
		}
	}

	// A wrong password still fails, and says that key files were skipped.
	_, err = Open(ctx, be, "wrong", Options{})
	if !errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), "skipped") {
		t.Errorf("wrong password: %v", err)
	}
}

// Keys are tried cheapest first, and the scrypt work one Open spends is
// bounded: the budget stops it before an expensive key.
func TestOpenKeyBudget(t *testing.T) {
	ctx := context.Background()
	be, err := CreateLocal(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	expensive := crypto.KDFParams{N: 1 << 12, R: 8, P: 1}
	r, err := Init(ctx, be, "right", 2, Options{KDF: expensive})
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"a", "b", "c"} {
		kf, err := crypto.NewKeyFile(pw, r.Key(), testKDF, "", "")
		if err != nil {
			t.Fatal(err)
		}
		saveKeyFile(t, be, kf)
	}
	// The cheap keys come first: "c" opens although the expensive key
	// sorts anywhere among the names.
	if _, err := Open(ctx, be, "c", Options{}); err != nil {
		t.Fatal(err)
	}
	old := keyBudget
	defer func() { keyBudget = old }()
	keyBudget = 3*testKDF.Work() + expensive.Work()/2
	var w warnings
	if _, err := Open(ctx, be, "right", Options{Warn: w.add}); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("the budget did not stop Open before the expensive key: %v", err)
	}
	if len(w.lines) != 1 || !strings.Contains(w.lines[0], "budget") {
		t.Errorf("warnings: %q", w.lines)
	}
	keyBudget = old
	if _, err := Open(ctx, be, "right", Options{}); err != nil {
		t.Fatal(err)
	}
}

// keyCacheBackend plays a cache that holds key files: also ones the
// repository no longer has.
type keyCacheBackend struct {
	Backend
	cached map[string][]byte
}

func (b *keyCacheBackend) CachedKeys() []string {
	var names []string
	for name := range b.cached {
		names = append(names, name)
	}
	return names
}

func (b *keyCacheBackend) Load(ctx context.Context, h Handle, length int, offset int64) (io.ReadCloser, error) {
	if buf, ok := b.cached[h.Name]; ok && h.Type == KeyFile {
		return io.NopCloser(bytes.NewReader(buf)), nil
	}
	return b.Backend.Load(ctx, h, length, offset)
}

// A cached key file opens the repository only while the repository
// still lists it: a removed key's password must stop working.
func TestOpenCachedKeyMustBeListed(t *testing.T) {
	ctx := context.Background()
	r, dir := newTestRepo(t, 2)
	oldID, err := r.AddKey(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	local, _ := OpenLocal(dir)
	buf, err := LoadAll(ctx, local, Handle{Type: KeyFile, Name: oldID.String()})
	if err != nil {
		t.Fatal(err)
	}
	be := &keyCacheBackend{Backend: local, cached: map[string][]byte{oldID.String(): buf}}
	if _, err := Open(ctx, be, "old", Options{}); err != nil {
		t.Fatalf("cached and listed key: %v", err)
	}
	if err := local.Remove(ctx, Handle{Type: KeyFile, Name: oldID.String()}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, be, "old", Options{}); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("a removed key, still cached, opened the repository: %v", err)
	}
	// The other key still opens, the cached one tried first or not.
	r2, err := Open(ctx, be, "secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r2.KeyID() == oldID {
		t.Fatal("opened with the removed key")
	}
}
