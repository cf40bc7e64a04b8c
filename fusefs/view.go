package fusefs

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/snapshot"
)

// TimeFormat names snapshot directories (in local time), as restic does.
const TimeFormat = "2006-01-02T15:04:05Z07:00"

// view is the snapshot-derived part of the file system: which names the
// top-level directories hold. It is rebuilt whenever the snapshot list
// changes and never modified afterwards.
type view struct {
	sorted []*snapshot.Snapshot // oldest first
	names  []string             // parallel to sorted: names under snapshots/
	ids    map[string]*snapshot.Snapshot
	tags   map[string][]*snapshot.Snapshot // oldest first
	hosts  map[string][]*snapshot.Snapshot
	// backups are the Kubernetes backup snapshots with their directory
	// names (the backup name, made unique by time).
	backups []backup
	newest  time.Time
}

type backup struct {
	name string
	sn   *snapshot.Snapshot
}

// sortSnapshots orders oldest first, ties by ID (as ListSnapshots does).
func sortSnapshots(sns []*snapshot.Snapshot) {
	slices.SortStableFunc(sns, func(a, b *snapshot.Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
}

func buildView(sns []*snapshot.Snapshot) *view {
	sorted := slices.Clone(sns)
	sortSnapshots(sorted)
	v := &view{sorted: sorted, names: timeNames(sorted), ids: map[string]*snapshot.Snapshot{},
		tags: map[string][]*snapshot.Snapshot{}, hosts: map[string][]*snapshot.Snapshot{}}
	short := map[string]int{}
	for _, sn := range sorted {
		short[sn.ID.Str()]++
	}
	byName := map[string][]*snapshot.Snapshot{}
	var backupNames []string
	for _, sn := range sorted {
		id := sn.ID.Str()
		if short[id] > 1 {
			id = sn.ID.String() // the short form is ambiguous
		}
		v.ids[id] = sn
		for _, t := range sn.Tags {
			if usableName(t) {
				v.tags[t] = append(v.tags[t], sn)
			}
		}
		if usableName(sn.Hostname) {
			v.hosts[sn.Hostname] = append(v.hosts[sn.Hostname], sn)
		}
		if name := backupName(sn); name != "" {
			if byName[name] == nil {
				backupNames = append(backupNames, name)
			}
			byName[name] = append(byName[name], sn)
		}
		if sn.Time.After(v.newest) {
			v.newest = sn.Time
		}
	}
	// The newest backup of a name keeps the plain name; older ones with
	// the same name get "@<time>".
	for _, name := range backupNames {
		group := byName[name]
		last := len(group) - 1
		v.backups = append(v.backups, backup{name: name, sn: group[last]})
		for i, tn := range timeNames(group[:last]) {
			v.backups = append(v.backups, backup{name: name + "@" + tn, sn: group[i]})
		}
	}
	return v
}

// backupName is the name from a snapshot's "backup=<name>" tag, or "".
func backupName(sn *snapshot.Snapshot) string {
	for _, t := range sn.Tags {
		if name, ok := strings.CutPrefix(t, layout.TagBackup); ok && usableName(name) {
			return name
		}
	}
	return ""
}

// usableName reports whether s can be a directory name (tags, hosts and
// backup names that cannot are left out).
func usableName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// timeNames names snapshots (sorted oldest first) by their local time;
// snapshots in the same second get "-1", "-2", ... appended.
func timeNames(sns []*snapshot.Snapshot) []string {
	names := make([]string, len(sns))
	used := map[string]bool{}
	for i, sn := range sns {
		base := sn.Time.Local().Format(TimeFormat)
		name := base
		for k := 1; used[name]; k++ {
			name = fmt.Sprintf("%s-%d", base, k)
		}
		used[name] = true
		names[i] = name
	}
	return names
}

// snapshotRoot is the directory node that stands for a snapshot's root.
func snapshotRoot(sn *snapshot.Snapshot) *snapshot.Node {
	tree := *sn.Tree
	return &snapshot.Node{Name: sn.ID.Str(), Type: snapshot.NodeDir, Mode: 0o755 | dirMode,
		ModTime: sn.Time, AccessTime: sn.Time, ChangeTime: sn.Time, UID: sn.UID, GID: sn.GID, Subtree: &tree}
}
