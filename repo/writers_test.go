package repo

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// Two writers share a Repository (the node agent copies volumes at once):
// when writer A's SaveBlob finds a blob writer B is still compressing and
// encrypting, it is told "known"; A's Flush must not return before that
// blob is in a pack, or A's snapshot, saved next, refers to a blob a crash
// would lose.
func TestFlushWaitsForBlobsOthersAreAdding(t *testing.T) {
	r, _ := newTestRepo(t, 2)
	ctx := context.Background()
	data := make([]byte, 4<<20)
	hits := 0
	for i := range 40 {
		rand.NewChaCha8([32]byte{byte(i), 1}).Read(data)
		id := Hash(data)
		var wg sync.WaitGroup
		started := make(chan struct{})
		wg.Go(func() {
			close(started)
			if _, _, _, err := r.SaveBlob(ctx, DataBlob, data, id); err != nil {
				t.Error(err)
			}
		})
		// B marks the blob in flight at once, then spends milliseconds
		// compressing and encrypting 4 MiB.
		<-started
		time.Sleep(200 * time.Microsecond)
		_, known, _, err := r.SaveBlob(ctx, DataBlob, data, id)
		if err != nil {
			t.Fatal(err)
		}
		if known { // else this writer stored it itself: no race this round
			hits++
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if !r.Index().Has(BlobHandle{ID: id, Type: DataBlob}) {
				t.Fatalf("round %d: Flush returned while the blob another writer was adding is in no pack", i)
			}
		}
		wg.Wait()
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d of 40 rounds found the blob in flight", hits)
}

// A writer that reloads new index files (the node agent, before each
// volume) does not load its own again: their entries are in already.
func TestLoadNewIndexesSkipsOwnFiles(t *testing.T) {
	r, _ := newTestRepo(t, 2)
	ctx := context.Background()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, _, _, err := r.SaveBlob(ctx, DataBlob, []byte{byte(i), 1, 2, 3}, ID{}); err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := r.LoadNewIndexes(ctx); err != nil || n != 0 {
			t.Fatalf("round %d: LoadNewIndexes loaded %d files (%v); its own file again", i, n, err)
		}
	}
	if got := len(r.Index().sorted); got != 3 {
		t.Errorf("%d index entries for 3 blobs", got)
	}
}
