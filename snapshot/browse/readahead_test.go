package browse

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/internal/snaptest"
)

// Over a repository where every read takes a while, ls, find, stats and
// diff load trees several at a time and print exactly what they print
// over a local one.
func TestBrowseReadAhead(t *testing.T) {
	ctx := context.Background()
	repoDir, src, sn1 := snaptest.ManyDirs(t, 300)
	// A second snapshot with a new file in every fifth directory.
	i := 0
	snaptest.Must(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if i++; i%5 == 0 {
				err = os.WriteFile(filepath.Join(p, "added.txt"), []byte(p), 0o644)
			}
		}
		return err
	}))
	sn2 := snaptest.Backup(t, snaptest.OpenRepo(t, repoDir), src)
	sns := []*snapshot.Snapshot{sn1, sn2}

	local := snaptest.OpenRepo(t, repoDir)
	r, slow := snaptest.OpenSlow(t, repoDir, time.Millisecond)
	fresh := func(r *repo.Repository) *snapshot.TreeLoader {
		slow.Reset()
		return snapshot.NewTreeLoader(r, 64)
	}
	readAhead := func(what string) {
		t.Helper()
		if slow.MaxInFlight() < 2 {
			t.Errorf("%s: at most %d tree load in flight", what, slow.MaxInFlight())
		}
	}

	got, _ := brLs(t, fresh(r), sn2, src, true)
	readAhead("ls")
	if want := brWalkSource(t, src, true); !slices.Equal(got, want) {
		t.Errorf("ls -R: %d paths, want %d, in walk order", len(got), len(want))
	}

	find := func(l *snapshot.TreeLoader) []string {
		var out []string
		snaptest.Must(t, Find(ctx, l, sns, FindOptions{Patterns: []string{"*"}}, func(res *FindResult) error {
			for _, m := range res.Matches {
				out = append(out, res.Snapshot.ID.Str()+" "+m.Path)
			}
			return nil
		}))
		return out
	}
	got = find(fresh(r))
	readAhead("find")
	if want := find(fresh(local)); !slices.Equal(got, want) || len(got) < 1000 {
		t.Errorf("find: %d matches, want the %d found over a local repository", len(got), len(want))
	}

	for _, mode := range []string{StatsRestoreSize, StatsRawData} {
		st, err := ComputeStats(ctx, fresh(r), sns, mode)
		snaptest.Must(t, err)
		readAhead("stats " + mode)
		want, err := ComputeStats(ctx, fresh(local), sns, mode)
		snaptest.Must(t, err)
		if !reflect.DeepEqual(st, want) {
			t.Errorf("stats %s: %+v, want %+v", mode, st, want)
		}
	}

	diff := func(l *snapshot.TreeLoader) []string {
		var out []string
		st, err := Diff(ctx, l, *sn1.Tree, *sn2.Tree, DiffOptions{}, func(c DiffChange) error {
			out = append(out, c.Modifier+" "+c.DisplayPath())
			return nil
		})
		snaptest.Must(t, err)
		return append(out, fmt.Sprintf("%+v", *st))
	}
	got = diff(fresh(r))
	readAhead("diff")
	want := diff(fresh(local))
	added := 0
	for _, line := range got {
		if strings.HasPrefix(line, "+ ") && strings.HasSuffix(line, "/added.txt") {
			added++
		}
	}
	if !slices.Equal(got, want) || added != i/5 {
		t.Errorf("diff: %d lines (%d added files), want the %d of a local repository (%d added)", len(got), added, len(want), i/5)
	}
}
