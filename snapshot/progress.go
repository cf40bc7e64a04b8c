package snapshot

import (
	"sync"
	"sync/atomic"
)

// Progress is shared between a long operation (backup, restore, check) and
// whoever displays it; the operation updates counters, the display polls.
type Progress struct {
	Files      atomic.Uint64 // files done
	Dirs       atomic.Uint64
	Bytes      atomic.Uint64 // bytes of file content done
	Errors     atomic.Uint64
	TotalFiles atomic.Uint64 // known totals; 0 until a scan has counted
	TotalBytes atomic.Uint64
	ScanDone   atomic.Bool // totals are final

	mu      sync.Mutex
	current string
}

// SetCurrent records the item being worked on.
func (p *Progress) SetCurrent(s string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.current = s
	p.mu.Unlock()
}

// Current returns the item being worked on.
func (p *Progress) Current() string {
	if p == nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}
