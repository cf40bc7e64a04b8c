package checker

import (
	"context"
	"sync"

	"github.com/cairn-backup/cairn/repo"
)

// treeJob is a tree to visit, with the first snapshot and path that reached
// it (trees are shared: each is visited once and named by that path).
type treeJob struct {
	id   repo.ID
	sn   repo.ID
	path string
}

// walkTrees visits every distinct tree reachable from roots once, with a few
// workers over a shared LIFO queue (depth first keeps the queue short).
// visit is called concurrently and returns the subtrees to queue. It returns
// how many trees were visited; on cancellation queued trees are dropped.
func walkTrees(ctx context.Context, roots []treeJob, workers int, visit func(treeJob) []treeJob) int {
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		queue   []treeJob
		pending int // queued or being visited
		seen    = map[repo.ID]struct{}{}
	)
	add := func(j treeJob) { // mu held
		if _, ok := seen[j.id]; ok {
			return
		}
		seen[j.id] = struct{}{}
		queue = append(queue, j)
		pending++
	}
	for _, j := range roots {
		add(j)
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				for len(queue) == 0 && pending > 0 {
					cond.Wait()
				}
				if len(queue) == 0 {
					mu.Unlock()
					return
				}
				j := queue[len(queue)-1]
				queue = queue[:len(queue)-1]
				mu.Unlock()

				var subs []treeJob
				if ctx.Err() == nil {
					subs = visit(j)
				}
				mu.Lock()
				for _, s := range subs {
					add(s)
				}
				pending--
				mu.Unlock()
				cond.Broadcast()
			}
		})
	}
	wg.Wait()
	return len(seen)
}
