// Package maintenance decides what a repository's scheduled maintenance
// forgets (expired snapshots, each schedule's retention policy, the pod
// volume snapshots of forgotten backups, old maintenance records) and
// keeps a record of each run in the repository, as restore records are
// kept (k8s/restorelog). The decision is pure (MakePlan); cmd/cairn runs
// it under an exclusive lock and prunes.
package maintenance

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/k8s/catalog"
	"github.com/cairn-backup/cairn/k8s/layout"
	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/snapshot"
)

// What a forgotten snapshot was.
const (
	KindBackup = "backup"             // a cluster backup
	KindVolume = "volume"             // a pod volume's own snapshot (volume-of=)
	KindRecord = "maintenance-record" // an older run's record
	KindOther  = "snapshot"           // any other snapshot with an expiry tag
)

// Why it was forgotten.
const (
	ReasonExpired         = "expired"          // its time to live ran out
	ReasonPolicy          = "policy"           // its schedule's retention policy
	ReasonBackupForgotten = "backup forgotten" // a volume snapshot of a backup forgotten now
	ReasonOrphan          = "orphan"           // a volume snapshot of a backup the repository does not hold
	ReasonOldRecord       = "old record"       // beyond Input.KeepRecords
)

// Defaults of Input.
const (
	DefaultKeepRecords = 100
	// DefaultOrphanAge: a backup's volume snapshots are saved before the
	// backup's own snapshot, so a young orphan may belong to a backup
	// that is still running (on another repository lock holder's clock);
	// after a day it belongs to one that died.
	DefaultOrphanAge = 24 * time.Hour
)

// Forget is one snapshot the plan forgets.
type Forget struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Backup   string    `json:"backup,omitempty"` // the backup, or the one a volume snapshot belongs to
	Schedule string    `json:"schedule,omitempty"`
	Reason   string    `json:"reason"`
	Detail   string    `json:"detail,omitempty"`
}

// Input is what MakePlan decides on.
type Input struct {
	Snapshots []*snapshot.Snapshot
	// Policies are the retention policies by schedule name.
	Policies map[string]retention.Policy
	// Completed says whether the backup whose snapshot ID is given
	// finished with phase Completed (backup.json); only the scheduled
	// backups of a policy are asked.
	Completed func(id string) bool
	Now       time.Time
	// KeepRecords is how many maintenance records stay (0: all).
	KeepRecords int
	OrphanAge   time.Duration
}

// ScheduleResult is what a schedule's policy decided.
type ScheduleResult struct {
	Schedule  string `json:"schedule"`
	Policy    string `json:"policy"`
	Backups   int    `json:"backups"` // not expired, before the policy
	Kept      int    `json:"kept"`
	Forgotten int    `json:"forgotten"`
	// Protected names the newest Completed backup when the policy alone
	// would have forgotten it: a policy never leaves a schedule without
	// a good backup (only its time to live can).
	Protected string `json:"protected,omitempty"`
}

// Plan is MakePlan's decision.
type Plan struct {
	Forget    []Forget         `json:"forget"`
	Schedules []ScheduleResult `json:"schedules,omitempty"`
}

// MakePlan decides what to forget, in this order: every snapshot whose
// time to live ran out; then, for each schedule with a policy, its
// backups that the policy does not keep (grouped by schedule alone, so
// hosts and paths do not split them), except the newest Completed one;
// then the pod volume snapshots of every backup name that has no
// snapshot left, and those whose backup is not in the repository and
// that are older than OrphanAge; then maintenance records beyond
// KeepRecords. Restore records are never forgotten. The result is
// oldest first.
func MakePlan(in Input) Plan {
	var plan Plan
	gone := map[string]bool{}
	forget := func(sn *snapshot.Snapshot, f Forget) {
		id := sn.ID.String()
		if gone[id] {
			return
		}
		gone[id] = true
		f.ID, f.Time = id, sn.Time
		plan.Forget = append(plan.Forget, f)
	}
	var backups, volumes, records []*snapshot.Snapshot
	entries := map[string]*catalog.BackupEntry{}
	for _, sn := range in.Snapshots {
		switch {
		case sn.HasTag(layout.TagRestoreRecord):
			continue
		case sn.HasTag(layout.TagMaintenanceRecord):
			records = append(records, sn)
			continue
		}
		if e, ok := catalog.NewBackupEntry(sn); ok {
			backups = append(backups, sn)
			entries[sn.ID.String()] = e
		} else if volumeOf(sn) != "" {
			volumes = append(volumes, sn)
		}
		if exp, ok := retention.ParseExpiry(sn.Tags); ok && !in.Now.Before(exp) {
			f := Forget{Kind: KindOther, Reason: ReasonExpired, Detail: "expired " + exp.UTC().Format(time.RFC3339)}
			if e := entries[sn.ID.String()]; e != nil {
				f.Kind, f.Backup, f.Schedule = KindBackup, e.Name, e.Schedule
			} else if b := volumeOf(sn); b != "" {
				f.Kind, f.Backup = KindVolume, b
			}
			forget(sn, f)
		}
	}

	for _, name := range slices.Sorted(maps.Keys(in.Policies)) {
		p := in.Policies[name]
		var list []retention.Snapshot
		var newestGood *snapshot.Snapshot
		byID := map[string]*snapshot.Snapshot{}
		for _, sn := range backups {
			id := sn.ID.String()
			if entries[id].Schedule != name || gone[id] {
				continue
			}
			byID[id] = sn
			list = append(list, retention.Snapshot{ID: id, Time: sn.Time, Hostname: sn.Hostname, Paths: sn.Paths, Tags: sn.Tags})
			if in.Completed != nil && in.Completed(id) && (newestGood == nil || newer(sn, newestGood)) {
				newestGood = sn
			}
		}
		res := retention.Apply(list, p)
		sr := ScheduleResult{Schedule: name, Policy: p.String(), Backups: len(list)}
		for _, r := range res.Remove {
			sn := byID[r.ID]
			if sn == newestGood {
				sr.Protected = entries[r.ID].Name
				continue
			}
			forget(sn, Forget{Kind: KindBackup, Backup: entries[r.ID].Name, Schedule: name, Reason: ReasonPolicy, Detail: p.String()})
			sr.Forgotten++
		}
		sr.Kept = sr.Backups - sr.Forgotten
		plan.Schedules = append(plan.Schedules, sr)
	}

	// A backup name may be on several snapshots (a rerun): its volume
	// snapshots go when none is left.
	names, left := map[string]bool{}, map[string]bool{}
	for _, sn := range backups {
		n := entries[sn.ID.String()].Name
		names[n] = true
		if !gone[sn.ID.String()] {
			left[n] = true
		}
	}
	for _, sn := range volumes {
		b := volumeOf(sn)
		switch {
		case names[b] && !left[b]:
			forget(sn, Forget{Kind: KindVolume, Backup: b, Reason: ReasonBackupForgotten})
		case !names[b] && in.OrphanAge > 0 && in.Now.Sub(sn.Time) > in.OrphanAge:
			forget(sn, Forget{Kind: KindVolume, Backup: b, Reason: ReasonOrphan, Detail: "no backup " + b + " in the repository"})
		}
	}

	if in.KeepRecords > 0 && len(records) > in.KeepRecords {
		slices.SortFunc(records, func(a, b *snapshot.Snapshot) int {
			if newer(a, b) {
				return -1
			}
			return 1
		})
		for _, sn := range records[in.KeepRecords:] {
			forget(sn, Forget{Kind: KindRecord, Reason: ReasonOldRecord})
		}
	}
	slices.SortStableFunc(plan.Forget, func(a, b Forget) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.ID, b.ID))
	})
	return plan
}

func volumeOf(sn *snapshot.Snapshot) string {
	for _, t := range sn.Tags {
		if v, ok := strings.CutPrefix(t, layout.TagVolumeOf); ok {
			return v
		}
	}
	return ""
}

// newer orders by time, then ID, so that ties decide the same way on
// every run.
func newer(a, b *snapshot.Snapshot) bool {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c > 0
	}
	return a.ID.String() > b.ID.String()
}
