package restorer

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cairn-backup/cairn/repo"
)

// The tree walk plans files into windows of bounded size. A full window is
// sealed and handed to the data workers while the walk plans the next one,
// so memory stays bounded however many files a snapshot holds, and the
// workers never wait for the whole tree to be read. A window is finished
// (hard links, verify, then the metadata of the directories whose walk
// ended while it was planned) once it and every earlier window are written:
// a directory's files are all in its window or earlier ones.
//
// A blob needed by files of two windows is read twice; windows are large
// enough that this is rare (files sharing blobs are usually near each
// other in the tree).

// Variables for the tests.
var (
	// windowFiles and windowBlobs bound a window. The files' nodes keep
	// their trees alive, so a window holds about windowFiles nodes.
	windowFiles = 4096
	windowBlobs = 8192
	// itemBlobs splits a pack's blobs into work items, so that the small
	// files of one pack are written by several workers at once; each item
	// is at least one range request, which costs a round trip on S3.
	itemBlobs = 1024
)

// windowsInFlight bounds the sealed windows not yet finished: one being
// written, one queued behind it, while a third is planned.
const windowsInFlight = 2

// window is one batch of planned files and what their data needs.
type window struct {
	seq       int
	files     []*fileJob
	links     []hardLink
	dirs      []*dirState // walks ended while planning it, children first
	blobs     map[repo.ID]*blobJob
	packs     map[repo.ID]*packJob
	packOrder []*packJob // first-seen order: files tend to complete in tree order

	pending atomic.Int32  // work items not yet done
	done    chan struct{} // closed when pending reaches zero
}

func newWindow(seq int) *window {
	return &window{seq: seq, blobs: map[repo.ID]*blobJob{}, packs: map[repo.ID]*packJob{}, done: make(chan struct{})}
}

// windowRamp is how many windows it takes to reach the full size: the
// first is 1/2^windowRamp of it, each next one twice the one before, so
// that the first data request goes out after a few hundred files are
// planned, not thousands (over a network the walk's tree loads take a
// while), and a small restore starts at once.
const windowRamp = 4

func (w *window) full() bool {
	shift := max(windowRamp-w.seq, 0)
	return len(w.files) >= max(windowFiles>>shift, 1) || len(w.blobs) >= max(windowBlobs>>shift, 1)
}

// workItem is a run of one pack's blobs (sorted by offset) for one worker.
type workItem struct {
	win   *window
	pack  *packJob
	blobs []*blobJob
}

// pipeline runs the data workers and the finisher behind the walk.
type pipeline struct {
	ctx      context.Context
	slots    chan struct{} // one per sealed window not yet finished
	dispatch chan *window  // sealed windows, to the dispatcher
	finish   chan *window  // sealed windows, in order, to the finisher
	work     chan workItem
	wg       sync.WaitGroup
	err      error // from the finisher; read after wait
}

func (rs *restorer) startPipeline(ctx context.Context) *pipeline {
	p := &pipeline{
		ctx:      ctx,
		slots:    make(chan struct{}, windowsInFlight),
		dispatch: make(chan *window, windowsInFlight),
		finish:   make(chan *window, windowsInFlight),
		work:     make(chan workItem),
	}
	// The dispatcher splits each window into work items, in pack order.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(p.work)
		for win := range p.dispatch {
			items := splitWindow(win)
			win.pending.Store(int32(len(items)))
			if len(items) == 0 {
				close(win.done)
			}
			for _, it := range items {
				select {
				case p.work <- it:
				case <-ctx.Done():
				}
			}
		}
	}()
	for range rs.opts.Workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			w := &dataWorker{}
			for it := range p.work {
				if ctx.Err() == nil {
					rs.restoreItem(ctx, it, w)
				}
				if it.win.pending.Add(-1) == 0 {
					close(it.win.done)
				}
			}
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for win := range p.finish {
			select {
			case <-win.done:
				if ctx.Err() == nil && p.err == nil {
					p.err = rs.finishWindow(ctx, win)
				}
			case <-ctx.Done():
			}
			<-p.slots
		}
	}()
	return p
}

// splitWindow turns a window's packs into work items of at most itemBlobs
// blobs each.
func splitWindow(win *window) []workItem {
	var items []workItem
	for _, pj := range win.packOrder {
		slices.SortFunc(pj.blobs, func(a, b *blobJob) int { return cmp.Compare(a.locs[0].Offset, b.locs[0].Offset) })
		for start := 0; start < len(pj.blobs); start += itemBlobs {
			items = append(items, workItem{win: win, pack: pj, blobs: pj.blobs[start:min(start+itemBlobs, len(pj.blobs))]})
		}
	}
	return items
}

// seal hands the window being planned to the pipeline (waiting while
// windowsInFlight are) and starts the next one. An empty window is not
// sealed unless it has directories or links to finish.
func (rs *restorer) seal(ctx context.Context) error {
	win := rs.win
	if len(win.files) == 0 && len(win.links) == 0 && len(win.dirs) == 0 {
		return nil
	}
	if testHookAfterPlan != nil {
		testHookAfterPlan(rs)
	}
	select {
	case rs.pipe.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	rs.pipe.dispatch <- win
	rs.pipe.finish <- win
	rs.win = newWindow(win.seq + 1)
	return nil
}

// wait ends the pipeline once every sealed window is finished (or dropped,
// when ctx ended) and returns the first fatal error.
func (p *pipeline) wait() error {
	close(p.dispatch)
	close(p.finish)
	p.wg.Wait()
	if p.err != nil {
		return p.err
	}
	return p.ctx.Err()
}

// finishWindow runs once win and every earlier window are written.
func (rs *restorer) finishWindow(ctx context.Context, win *window) error {
	rs.makeLinks(win.links)
	if rs.opts.Verify {
		if err := rs.verify(ctx, win.files); err != nil {
			return err
		}
	}
	// A first name of a hard link stays known for later links; its blobs
	// (and through them other files of the window) need not.
	for _, fj := range win.files {
		if fj.node.Links > 1 {
			fj.content = nil
		}
	}
	return rs.finishDirs(ctx, win.dirs)
}
