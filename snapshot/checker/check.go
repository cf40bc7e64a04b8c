// Package checker checks a repository like restic's check (index, packs,
// locks, and every snapshot's trees down to the index entries of its file
// contents) and finds the blobs that snapshots use (UsedBlobs, for prune).
// Both walk all trees of all snapshots in parallel, each tree once.
package checker

import (
	"context"
	"errors"
	"fmt"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"golang.org/x/sync/errgroup"
)

// Severity grades a problem found by Check (the same type as repo's, so
// problems from both layers flow through one report function).
type Severity = repo.Severity

const (
	SevError   = repo.SevError   // the repository is damaged
	SevWarning = repo.SevWarning // harmless: unused packs, duplicate blobs, stale locks...
)

// CheckOptions select how thoroughly Check reads the repository.
type CheckOptions struct {
	ReadData bool
	// ReadDataSubset reads only some packs: "n/m" is the n-th of m groups of
	// packs (grouped by pack ID, so runs with n = 1..m cover every pack once)
	// and "p%" a random p percent. It implies ReadData.
	ReadDataSubset string
	// Progress, when set, counts packs read in Files and their bytes in
	// Bytes; TotalFiles and TotalBytes are set before reading starts.
	Progress *snapshot.Progress
}

// CheckResult counts what Check found and looked at.
type CheckResult struct {
	Errors                         int // real problems: the repository is damaged
	Warnings                       int // harmless problems
	Snapshots, Trees, Packs, Blobs int
	ReadDataPacks                  int
	ReadDataBytes                  int64
}

// Check verifies the repository like restic's check: index files, pack files
// and their sizes, locks, every snapshot's trees down to the index entries
// of its file contents, and with ReadData every byte of the selected packs.
// Each problem goes to report (if not nil) as one line; the returned error
// is only for when the check itself could not run. Check replaces r's index
// with the one it loads, leaving out unreadable index files.
func Check(ctx context.Context, r *repo.Repository, opts CheckOptions, report func(sev Severity, msg string)) (CheckResult, error) {
	var res CheckResult
	if _, err := repo.SelectPacks(nil, opts.ReadDataSubset); err != nil {
		return res, err // a typo should fail before minutes of work
	}
	var mu sync.Mutex
	rep := func(sev Severity, msg string) {
		mu.Lock()
		defer mu.Unlock()
		if sev == SevWarning {
			res.Warnings++
		} else {
			res.Errors++
		}
		if report != nil {
			report(sev, msg)
		}
	}
	c := repo.NewChecker(r, rep)
	if err := c.LoadIndex(ctx); err != nil {
		return res, err
	}
	if err := c.CheckPacks(ctx); err != nil {
		return res, err
	}
	if err := c.CheckLocks(ctx); err != nil {
		return res, err
	}
	res.Packs, res.Blobs = c.Stats()

	sns, err := loadAllSnapshots(ctx, r, rep)
	if err != nil {
		return res, err
	}
	res.Snapshots = len(sns)
	tc := &treeChecker{r: r, rep: rep}
	var roots []treeJob
	for _, sn := range sns {
		roots = append(roots, treeJob{id: *sn.Tree, sn: sn.ID, path: "/"})
	}
	opts.Progress.SetCurrent("checking snapshots")
	res.Trees = walkTrees(ctx, roots, snapshot.TreeLoadConcurrency, func(j treeJob) []treeJob { return tc.check(ctx, j) })
	if err := ctx.Err(); err != nil {
		return res, err
	}

	if !opts.ReadData && opts.ReadDataSubset == "" {
		return res, nil
	}
	packs, err := repo.SelectPacks(c.DataPacks(), opts.ReadDataSubset)
	if err != nil {
		return res, err
	}
	var total int64
	for _, id := range packs {
		total += c.PackFileSize(id)
	}
	if p := opts.Progress; p != nil {
		p.TotalFiles.Store(uint64(len(packs)))
		p.TotalBytes.Store(uint64(total))
		p.ScanDone.Store(true)
		p.SetCurrent("reading pack data")
	}
	var nPacks, nBytes atomic.Int64
	err = c.ReadPacks(ctx, packs, min(4, max(2, runtime.GOMAXPROCS(0))), repo.ReadProgress{
		Bytes: func(n int64) {
			nBytes.Add(n)
			if opts.Progress != nil {
				opts.Progress.Bytes.Add(uint64(n))
			}
		},
		Pack: func() {
			nPacks.Add(1)
			if opts.Progress != nil {
				opts.Progress.Files.Add(1)
			}
		},
	})
	res.ReadDataPacks, res.ReadDataBytes = int(nPacks.Load()), nBytes.Load()
	return res, err
}

// loadAllSnapshots loads every snapshot file, reporting those that cannot be
// read or have no tree.
func loadAllSnapshots(ctx context.Context, r *repo.Repository, rep func(Severity, string)) ([]*snapshot.Snapshot, error) {
	var ids []repo.ID
	if err := r.List(ctx, repo.SnapshotFile, func(id repo.ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		return nil, fmt.Errorf("check: list snapshots: %w", err)
	}
	slices.SortFunc(ids, func(a, b repo.ID) int { return strings.Compare(a.String(), b.String()) })
	out := make([]*snapshot.Snapshot, len(ids))
	// Every unreadable snapshot is reported and the check goes on.
	var g errgroup.Group
	g.SetLimit(8)
	for i, id := range ids {
		g.Go(func() error {
			sn := &snapshot.Snapshot{}
			err := r.LoadJSONUnpacked(ctx, repo.SnapshotFile, id, sn)
			switch {
			case ctx.Err() != nil:
			case repo.IsNotExist(err):
				// removed by a concurrent forget
			case err != nil:
				rep(SevError, fmt.Sprintf("snapshot %s cannot be read: %v", id.Str(), err))
			case sn.Tree == nil || sn.Tree.IsNull():
				rep(SevError, fmt.Sprintf("snapshot %s has no tree", id.Str()))
			default:
				sn.ID = id
				out[i] = sn
			}
			return nil
		})
	}
	_ = g.Wait() // never fails: problems go to rep
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(sn *snapshot.Snapshot) bool { return sn == nil }), nil
}

// treeChecker checks trees; walkTrees drives it.
type treeChecker struct {
	r   *repo.Repository
	rep func(Severity, string)
}

func (tc *treeChecker) errorf(j treeJob, p, format string, args ...any) {
	tc.rep(SevError, fmt.Sprintf("snapshot %s, %s: ", j.sn.Str(), showPath(p))+fmt.Sprintf(format, args...))
}

// check loads one tree, checks its nodes and returns its subtrees.
func (tc *treeChecker) check(ctx context.Context, j treeJob) []treeJob {
	buf, err := tc.r.LoadBlob(ctx, repo.TreeBlob, j.id, nil)
	if err != nil {
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, repo.ErrBlobNotFound):
			tc.errorf(j, j.path, "tree %s is missing (not in the index)", j.id.Str())
		default:
			tc.errorf(j, j.path, "tree %s cannot be loaded: %v", j.id.Str(), err)
		}
		return nil
	}
	t, unsorted, err := snapshot.DecodeTreeReportOrder(buf)
	if err != nil {
		// Readers refuse the whole tree, so nothing below it is checked.
		tc.errorf(j, j.path, "tree %s is invalid: %v", j.id.Str(), err)
		return nil
	}
	if unsorted {
		tc.rep(SevWarning, fmt.Sprintf("snapshot %s, %s: tree %s: nodes are not sorted by name (readers sort them)", j.sn.Str(), showPath(j.path), j.id.Str()))
	}
	var subs []treeJob
	for _, n := range t.Nodes {
		p := path.Join(j.path, n.Name)
		switch n.Type {
		case snapshot.NodeFile:
			tc.checkFile(j, p, n)
		case snapshot.NodeDir:
			if n.Subtree == nil || n.Subtree.IsNull() {
				tc.errorf(j, p, "directory has no subtree")
				continue
			}
			subs = append(subs, treeJob{id: *n.Subtree, sn: j.sn, path: p})
		case snapshot.NodeSymlink, snapshot.NodeDev, snapshot.NodeCharDev, snapshot.NodeFifo, snapshot.NodeSocket, snapshot.NodeIrregular:
		default:
			tc.errorf(j, p, "unknown node type %q", n.Type)
		}
	}
	return subs
}

// checkFile checks that a file's data blobs are all indexed and that their
// plaintext sizes add up to the file's size.
func (tc *treeChecker) checkFile(j treeJob, p string, n *snapshot.Node) {
	if n.Content == nil {
		tc.errorf(j, p, "file has no content list")
		return
	}
	var sum uint64
	missing, example := 0, ""
	for i, id := range n.Content {
		locs := tc.r.LookupBlob(repo.DataBlob, id)
		if len(locs) == 0 {
			if missing == 0 {
				example = fmt.Sprintf("blob %d: %s", i, id.Str())
			}
			missing++
			continue
		}
		sum += uint64(locs[0].PlaintextLength())
	}
	switch {
	case missing > 0:
		tc.errorf(j, p, "%d of %d data blobs are missing (not in the index), e.g. %s", missing, len(n.Content), example)
	case sum != n.Size:
		tc.errorf(j, p, "file size is %d bytes, but its data blobs hold %d", n.Size, sum)
	}
}

// showPath quotes a path only when it holds characters that would garble a
// one-line message.
func showPath(p string) string {
	if strings.IndexFunc(p, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(p)
	}
	return p
}
