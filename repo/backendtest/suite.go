// Package backendtest is the conformance suite every repo.Backend passes.
package backendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sort"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/repo"
)

// Run exercises be, which must be empty, through the Backend interface.
func Run(t *testing.T, newBackend func(t *testing.T) repo.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, be repo.Backend)
	}{
		{"SaveLoad", testSaveLoad},
		{"RangedLoad", testRangedLoad},
		{"StatListRemove", testStatListRemove},
		{"NotExist", testNotExist},
		{"Config", testConfig},
		{"Concurrent", testConcurrent},
		{"Overwrite", testOverwrite},
		{"Canceled", testCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newBackend(t)
			t.Cleanup(func() { be.Close() })
			tt.fn(t, be)
		})
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func save(t *testing.T, be repo.Backend, h repo.Handle, data []byte) {
	t.Helper()
	if err := be.Save(context.Background(), h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("save %v: %v", h, err)
	}
}

func load(t *testing.T, be repo.Backend, h repo.Handle, length int, offset int64) []byte {
	t.Helper()
	rd, err := be.Load(context.Background(), h, length, offset)
	if err != nil {
		t.Fatalf("load %v [%d+%d]: %v", h, offset, length, err)
	}
	defer rd.Close()
	buf, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("read %v: %v", h, err)
	}
	return buf
}

func handle(t repo.FileType, data []byte) repo.Handle {
	return repo.Handle{Type: t, Name: repo.Hash(data).String()}
}

func testSaveLoad(t *testing.T, be repo.Backend) {
	for _, size := range []int{0, 1, 4095, 1 << 20, 5<<20 + 3} {
		for _, ft := range []repo.FileType{repo.PackFile, repo.IndexFile, repo.SnapshotFile, repo.KeyFile, repo.LockFile} {
			data := randBytes(size)
			h := handle(ft, data)
			save(t, be, h, data)
			if got := load(t, be, h, 0, 0); !bytes.Equal(got, data) {
				t.Fatalf("%v: loaded %d bytes, differ from the %d saved", h, len(got), len(data))
			}
		}
	}
}

func testRangedLoad(t *testing.T, be repo.Backend) {
	data := randBytes(3<<20 + 17)
	h := handle(repo.PackFile, data)
	save(t, be, h, data)
	for _, r := range []struct{ off, n int }{{0, 1}, {0, 100}, {1, 100}, {1 << 20, 4096}, {len(data) - 4, 4}, {len(data) - 10, 0}, {5, 0}, {len(data) - 1, 1}} {
		got := load(t, be, h, r.n, int64(r.off))
		want := data[r.off:]
		if r.n > 0 {
			want = data[r.off : r.off+r.n]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("range %d+%d: got %d bytes, want %d", r.off, r.n, len(got), len(want))
		}
	}
}

func testStatListRemove(t *testing.T, be repo.Backend) {
	ctx := context.Background()
	want := map[string]int64{}
	for i := 0; i < 30; i++ {
		data := randBytes(i * 100)
		h := handle(repo.PackFile, data)
		save(t, be, h, data)
		want[h.Name] = int64(len(data))
	}
	other := randBytes(10)
	save(t, be, handle(repo.IndexFile, other), other)
	got := map[string]int64{}
	if err := be.List(ctx, repo.PackFile, func(fi repo.FileInfo) error {
		got[fi.Name] = fi.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("list: %d packs, want %d", len(got), len(want))
	}
	for name, size := range want {
		if got[name] != size {
			t.Fatalf("list: %s has size %d, want %d", name, got[name], size)
		}
		fi, err := be.Stat(ctx, repo.Handle{Type: repo.PackFile, Name: name})
		if err != nil || fi.Size != size {
			t.Fatalf("stat %s: %v size %d, want %d", name, err, fi.Size, size)
		}
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names[:10] {
		if err := be.Remove(ctx, repo.Handle{Type: repo.PackFile, Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	count := 0
	be.List(ctx, repo.PackFile, func(repo.FileInfo) error { count++; return nil })
	if count != 20 {
		t.Fatalf("after removing 10 of 30: %d left", count)
	}
	errStop := errors.New("stop")
	if err := be.List(ctx, repo.PackFile, func(repo.FileInfo) error { return errStop }); !errors.Is(err, errStop) {
		t.Fatalf("list did not pass on the callback's error: %v", err)
	}
	n := 0
	be.List(ctx, repo.SnapshotFile, func(repo.FileInfo) error { n++; return nil })
	if n != 0 {
		t.Fatalf("empty type lists %d files", n)
	}
}

func testNotExist(t *testing.T, be repo.Backend) {
	ctx := context.Background()
	h := repo.Handle{Type: repo.PackFile, Name: repo.Hash([]byte("missing")).String()}
	if _, err := be.Stat(ctx, h); !repo.IsNotExist(err) {
		t.Fatalf("stat of a missing file: %v, want IsNotExist", err)
	}
	rd, err := be.Load(ctx, h, 0, 0)
	if err == nil {
		_, err = io.ReadAll(rd)
		rd.Close()
	}
	if !repo.IsNotExist(err) {
		t.Fatalf("load of a missing file: %v, want IsNotExist", err)
	}
	if err := be.Remove(ctx, h); err != nil && !repo.IsNotExist(err) {
		t.Fatalf("remove of a missing file: %v", err)
	}
}

func testConfig(t *testing.T, be repo.Backend) {
	h := repo.Handle{Type: repo.ConfigFile}
	if _, err := be.Stat(context.Background(), h); !repo.IsNotExist(err) {
		t.Fatalf("fresh backend has a config: %v", err)
	}
	data := []byte("config bytes")
	save(t, be, h, data)
	if got := load(t, be, h, 0, 0); !bytes.Equal(got, data) {
		t.Fatal("config differs")
	}
}

func testConcurrent(t *testing.T, be repo.Backend) {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := randBytes(256 << 10)
			h := handle(repo.PackFile, data)
			if err := be.Save(context.Background(), h, bytes.NewReader(data), int64(len(data))); err != nil {
				errs <- err
				return
			}
			rd, err := be.Load(context.Background(), h, 1000, 5000)
			if err != nil {
				errs <- err
				return
			}
			got, err := io.ReadAll(rd)
			rd.Close()
			if err != nil || !bytes.Equal(got, data[5000:6000]) {
				errs <- errors.New("concurrent ranged load differs")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Saving the same content twice (a retried upload) must leave one good file.
func testOverwrite(t *testing.T, be repo.Backend) {
	data := randBytes(1000)
	h := handle(repo.SnapshotFile, data)
	save(t, be, h, data)
	if err := be.Save(context.Background(), h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Logf("second save of identical content: %v (allowed)", err)
	}
	if got := load(t, be, h, 0, 0); !bytes.Equal(got, data) {
		t.Fatal("content changed after a second save")
	}
}

// A save that fails midway must not leave a file behind.
func testCanceled(t *testing.T, be repo.Backend) {
	data := randBytes(1 << 20)
	h := handle(repo.PackFile, data)
	rd := io.MultiReader(bytes.NewReader(data[:1000]), errReader{})
	if err := be.Save(context.Background(), h, rd, int64(len(data))); err == nil {
		t.Fatal("save from a failing reader succeeded")
	}
	if _, err := be.Stat(context.Background(), h); !repo.IsNotExist(err) {
		t.Fatalf("failed save left a file: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := be.Save(ctx, h, bytes.NewReader(data), int64(len(data))); err == nil {
		if _, err := be.Stat(context.Background(), h); err != nil {
			t.Fatal("save reported success on a canceled context but stored nothing")
		}
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("injected read failure") }
