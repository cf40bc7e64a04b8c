package repo

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A writer whose lock went unrefreshed for most of StaleLockAge (it was
// paused) must not save index or snapshot files: a prune may have judged
// its lock stale and removed its packs meanwhile.
func TestWritesStopWhenLockLost(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRepo(t, 2)
	l, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveJSONUnpacked(ctx, SnapshotFile, map[string]int{"a": 1}); err != nil {
		t.Fatalf("save under a fresh lock: %v", err)
	}
	l.mu.Lock()
	l.refreshed = l.refreshed.Add(-lockLostAfter - time.Minute)
	l.mu.Unlock()
	_, err = r.SaveJSONUnpacked(ctx, SnapshotFile, map[string]int{"a": 2})
	if !errors.Is(err, ErrLockLost) {
		t.Fatalf("save after a long pause: %v, want ErrLockLost", err)
	}
	if _, _, _, err := r.SaveBlob(ctx, DataBlob, []byte("x"), ID{}); err != nil {
		t.Fatal(err) // packs may still be written: nothing refers to them
	}
	if err := r.Flush(ctx); !errors.Is(err, ErrLockLost) {
		t.Fatalf("flush (writes an index) after a long pause: %v, want ErrLockLost", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	// Without the lost lock, writing works again (a new run locks anew).
	l2, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Unlock(ctx)
	if _, err := r.SaveJSONUnpacked(ctx, SnapshotFile, map[string]int{"a": 3}); err != nil {
		t.Fatal(err)
	}
}
