package repo

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLocks(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRepo(t, 2)
	shared1, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	shared2, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatalf("two shared locks must coexist: %v", err)
	}
	_, err = r.Lock(ctx, true)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("exclusive lock while shared held: %v", err)
	}
	host, _ := os.Hostname()
	if want := "PID"; err == nil || !contains(err.Error(), want) || !contains(err.Error(), host) {
		t.Fatalf("lock error should name host and PID: %v", err)
	}
	shared1.Unlock(ctx)
	shared2.Unlock(ctx)
	ex, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatalf("exclusive after unlock: %v", err)
	}
	if _, err := r.Lock(ctx, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("shared lock while exclusive held: %v", err)
	}
	ex.Unlock(ctx)
	locks, _ := r.ListLocks(ctx)
	if len(locks) != 0 {
		t.Fatalf("%d locks left after unlock", len(locks))
	}
}

func TestStaleLocks(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRepo(t, 2)
	host, _ := os.Hostname()
	// A lock of a dead process on this host, and an old one from elsewhere.
	dead := &LockJSON{Time: time.Now(), Exclusive: true, Hostname: host, PID: 1 << 30}
	old := &LockJSON{Time: time.Now().Add(-time.Hour), Exclusive: true, Hostname: "elsewhere", PID: 1}
	live := &LockJSON{Time: time.Now(), Exclusive: false, Hostname: "elsewhere", PID: 1}
	for _, l := range []*LockJSON{dead, old, live} {
		if _, err := r.SaveJSONUnpacked(ctx, LockFile, l); err != nil {
			t.Fatal(err)
		}
	}
	if !dead.Stale(time.Now()) || !old.Stale(time.Now()) || live.Stale(time.Now()) {
		t.Fatal("staleness misjudged")
	}
	l, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatalf("stale exclusive locks must not block: %v", err)
	}
	l.Unlock(ctx)
	n, err := r.RemoveLocks(ctx, false)
	if err != nil || n != 2 {
		t.Fatalf("removed %d stale locks (%v), want 2", n, err)
	}
	n, _ = r.RemoveLocks(ctx, true)
	if n != 1 {
		t.Fatalf("remove-all removed %d, want 1", n)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
