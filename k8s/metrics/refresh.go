package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/repo"
)

// PhaseUnknown is the phase label of a backup whose backup.json could not
// be read.
const PhaseUnknown = "Unknown"

// Refresher reads the repository's backups into the gauges. A backup's
// snapshot never changes, so the phase read from its backup.json is kept
// by snapshot ID: a refresh lists snapshot files and reads only the new
// backups' backup.json (a tree and one small blob each), never data packs.
type Refresher struct {
	M    *Agent
	Repo *repo.Repository

	mu    sync.Mutex
	phase map[repo.ID]string
}

// Refresh lists the backups and pack files and replaces the repository
// gauges. It is the hook maintenance has for now: the repository size is
// measured here, so after a prune the next refresh reports what is left.
func (f *Refresher) Refresh(ctx context.Context) error {
	err := f.refresh(ctx)
	if err != nil && !errors.Is(err, ErrPartial) {
		f.M.refreshFailures.Add(1)
		return err
	}
	f.M.refreshed.Set(float64(time.Now().Unix()))
	return err
}

// ErrPartial says a refresh updated the gauges but could not read some
// snapshot files or backup.json files (counted as phase Unknown; read
// again next time): a damaged backup, or a prune under way.
var ErrPartial = errors.New("some backups could not be read")

func (f *Refresher) refresh(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.phase == nil {
		f.phase = map[repo.ID]string{}
	}
	// Backups written since the agent started are in index files it has
	// not loaded yet.
	if _, err := f.Repo.LoadNewIndexes(ctx); err != nil {
		return fmt.Errorf("metrics: load new index files: %w", err)
	}
	var warned error
	entries, err := catalog.ListBackups(ctx, f.Repo, func(err error) { warned = err })
	if err != nil {
		return fmt.Errorf("metrics: list backups: %w", err)
	}
	var todo []*catalog.BackupEntry
	for _, e := range entries {
		if _, ok := f.phase[e.Snapshot.ID]; !ok {
			todo = append(todo, e)
		}
	}
	catalog.LoadBackupInfos(ctx, f.Repo, todo)
	var unread error
	for _, e := range todo {
		switch {
		case e.InfoErr != nil && ctx.Err() != nil:
			return ctx.Err()
		case e.InfoErr != nil:
			// Counted as Unknown this time and read again next time: the
			// refresh takes no lock, so a prune may be under way.
			unread = e.InfoErr
		case e.Info.Phase == "":
			f.phase[e.Snapshot.ID] = PhaseUnknown
		default:
			f.phase[e.Snapshot.ID] = e.Info.Phase
		}
	}
	var size, packs int64
	if err := f.Repo.List(ctx, repo.PackFile, func(_ repo.ID, n int64) error {
		size += n
		packs++
		return nil
	}); err != nil {
		return fmt.Errorf("metrics: list pack files: %w", err)
	}

	byPhase := map[string]int{}
	last := map[string]time.Time{}
	live := map[repo.ID]bool{}
	for _, e := range entries {
		id := e.Snapshot.ID
		live[id] = true
		ph, ok := f.phase[id]
		if !ok {
			ph = PhaseUnknown
		}
		byPhase[ph]++
		if t, ok := last[e.Schedule]; ph == layout.PhaseCompleted && (!ok || e.Snapshot.Time.After(t)) {
			last[e.Schedule] = e.Snapshot.Time
		}
	}
	for id := range f.phase {
		if !live[id] {
			delete(f.phase, id) // forgotten
		}
	}
	f.M.backups.Replace(func(set func(float64, ...string)) {
		for _, ph := range []string{layout.PhaseCompleted, layout.PhasePartiallyFailed, layout.PhaseFailed} {
			set(0, ph) // present at zero, so "== 0" and rate alerts work
		}
		for ph, n := range byPhase {
			set(float64(n), ph)
		}
	})
	f.M.lastSuccess.Replace(func(set func(float64, ...string)) {
		for s, t := range last {
			set(float64(t.Unix()), s)
		}
	})
	f.M.repoSize.Set(float64(size))
	f.M.repoPacks.Set(float64(packs))
	if unread != nil {
		return fmt.Errorf("metrics: %w: %w (counted as phase %s); `cairn check` tells a damaged backup from a prune under way", ErrPartial, unread, PhaseUnknown)
	}
	if warned != nil {
		return fmt.Errorf("metrics: %w: a snapshot file is unreadable (%w); run `cairn check`", ErrPartial, warned)
	}
	return nil
}

// Run refreshes at once and then every interval until ctx ends; failures
// are logged and counted, and the next refresh tries again.
func (f *Refresher) Run(ctx context.Context, every time.Duration, logf func(string, ...any)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := f.Refresh(ctx); err != nil && ctx.Err() == nil {
			logf("%v (next try in %s)", err, every)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
