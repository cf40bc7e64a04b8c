package repo

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A long-running reader sees blobs whose index files were written after
// it loaded the index; a file that fails to load is not marked loaded and
// is tried again.
func TestLoadNewIndexes(t *testing.T) {
	ctx := context.Background()
	writer, dir := newTestRepo(t, 2)
	saveIdx := func(data string) ID {
		t.Helper()
		id, _, _, err := writer.SaveBlob(ctx, DataBlob, []byte(data), ID{})
		if err != nil {
			t.Fatal(err)
		}
		if err := writer.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := saveIdx("first blob")

	be, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := Open(ctx, be, "secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := reader.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if !reader.HasBlob(DataBlob, first) {
		t.Fatal("LoadIndex missed the first blob")
	}
	if n, err := reader.LoadNewIndexes(ctx); n != 0 || err != nil {
		t.Fatalf("nothing new: LoadNewIndexes = %d, %v", n, err)
	}

	second := saveIdx("second blob")
	// Damage the new index file: the load fails and it stays unloaded.
	var newest string
	entries, _ := os.ReadDir(filepath.Join(dir, "index"))
	for _, e := range entries {
		if id, _ := ParseID(e.Name()); !reader.idxLoaded[id] {
			newest = filepath.Join(dir, "index", e.Name())
		}
	}
	good, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(newest, 0o600)
	if err := os.WriteFile(newest, good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := reader.LoadNewIndexes(ctx); err == nil || n != 0 {
		t.Fatalf("a damaged index file: LoadNewIndexes = %d, %v", n, err)
	}
	if err := os.WriteFile(newest, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := reader.LoadNewIndexes(ctx); n != 1 || err != nil {
		t.Fatalf("after repair: LoadNewIndexes = %d, %v (a failed file was marked loaded)", n, err)
	}
	if !reader.HasBlob(DataBlob, second) || !reader.HasBlob(DataBlob, first) {
		t.Fatal("blobs missing after LoadNewIndexes")
	}
	if got := len(reader.LookupBlob(DataBlob, first)); got != 1 {
		t.Errorf("first blob has %d locations: an index file was loaded twice", got)
	}

	// A fresh Repository loads everything with LoadNewIndexes alone.
	fresh, err := Open(ctx, be, "secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := fresh.LoadNewIndexes(ctx); n != 2 || err != nil {
		t.Fatalf("fresh LoadNewIndexes = %d, %v, want 2", n, err)
	}

	// The writer's index was built by Init and SaveBlob, not loaded: its
	// first LoadNewIndexes rebuilds it from the files.
	if n, err := writer.LoadNewIndexes(ctx); n != 2 || err != nil {
		t.Fatalf("writer LoadNewIndexes = %d, %v, want 2", n, err)
	}
	if got := len(writer.LookupBlob(DataBlob, second)); got != 1 {
		t.Errorf("second blob has %d locations in the rebuilt index, want 1", got)
	}
}
