package maintenance

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/retention"
	"github.com/cairn-backup/cairn/snapshot"
)

var now = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)

func snap(name string, age time.Duration, tags ...string) *snapshot.Snapshot {
	return &snapshot.Snapshot{ID: repo.Hash([]byte(name)), Time: now.Add(-age), Hostname: "c1", Paths: []string{"k8s://c1"}, Tags: tags}
}

// forgotten renders a plan as "name:reason" lines, by the snapshot names
// of the test.
func forgotten(p Plan, sns map[string]*snapshot.Snapshot) []string {
	byID := map[string]string{}
	for n, sn := range sns {
		byID[sn.ID.String()] = n
	}
	var out []string
	for _, f := range p.Forget {
		out = append(out, byID[f.ID]+":"+f.Reason)
	}
	slices.Sort(out)
	return out
}

func TestMakePlan(t *testing.T) {
	expired := "expires=" + now.Add(-time.Minute).Format(time.RFC3339)
	later := "expires=" + now.Add(time.Hour).Format(time.RFC3339)
	h := time.Hour
	tests := []struct {
		name      string
		snaps     map[string][]any // name -> age, tags...
		policies  map[string]retention.Policy
		completed []string // snapshot names whose backup Completed
		keepRecs  int
		want      []string
	}{
		{
			name: "ttl forgets backups, their volumes and other expired snapshots; not restore records",
			snaps: map[string][]any{
				"b1":     {48 * h, "backup=b1", expired},
				"b1-vol": {48 * h, "volume-of=b1", expired},
				"b2":     {1 * h, "backup=b2", later},
				"b2-vol": {1 * h, "volume-of=b2", later},
				"etcd":   {72 * h, expired},
				"rr":     {72 * h, "cairn-restore", "restore=r1", expired},
			},
			want: []string{"b1-vol:expired", "b1:expired", "etcd:expired"},
		},
		{
			name: "a backup forgotten by its TTL takes its volumes even when they carry no TTL",
			snaps: map[string][]any{
				"b1":     {48 * h, "backup=b1", expired},
				"b1-vol": {48 * h, "volume-of=b1"},
			},
			want: []string{"b1-vol:backup forgotten", "b1:expired"},
		},
		{
			name: "keep-last per schedule; other schedules and hand-made backups untouched",
			snaps: map[string][]any{
				"n1": {4 * h, "backup=n-1", "schedule=nightly"}, "n1v": {4 * h, "volume-of=n-1"},
				"n2": {3 * h, "backup=n-2", "schedule=nightly"},
				"n3": {2 * h, "backup=n-3", "schedule=nightly"},
				"w1": {5 * h, "backup=w-1", "schedule=weekly"},
				"m1": {9 * h, "backup=by-hand"},
			},
			policies:  map[string]retention.Policy{"nightly": {Last: 2}},
			completed: []string{"n1", "n2", "n3"},
			want:      []string{"n1:policy", "n1v:backup forgotten"},
		},
		{
			name: "the newest completed backup survives the policy when newer ones failed",
			snaps: map[string][]any{
				"good": {4 * h, "backup=s-1", "schedule=s"},
				"bad1": {3 * h, "backup=s-2", "schedule=s"},
				"bad2": {2 * h, "backup=s-3", "schedule=s"},
			},
			policies:  map[string]retention.Policy{"s": {Last: 1}},
			completed: []string{"good"},
			want:      []string{"bad1:policy"}, // keep-last keeps bad2, the newest
		},
		{
			name: "a rerun name keeps its volumes while one of its snapshots stays",
			snaps: map[string][]any{
				"old": {48 * h, "backup=same", expired},
				"new": {1 * h, "backup=same"},
				"vol": {1 * h, "volume-of=same"},
			},
			want: []string{"old:expired"},
		},
		{
			name: "orphaned volume snapshots go after a day, young ones stay",
			snaps: map[string][]any{
				"orphan-old":   {30 * h, "volume-of=died"},
				"orphan-young": {1 * h, "volume-of=running"},
			},
			want: []string{"orphan-old:orphan"},
		},
		{
			name: "old maintenance records beyond KeepRecords",
			snaps: map[string][]any{
				"r1": {3 * h, "cairn-maintenance", "maintenance=m1"},
				"r2": {2 * h, "cairn-maintenance", "maintenance=m2"},
				"r3": {1 * h, "cairn-maintenance", "maintenance=m3"},
			},
			keepRecs: 2,
			want:     []string{"r1:old record"},
		},
		{
			name: "nothing to do",
			snaps: map[string][]any{
				"b": {1 * h, "backup=b", "schedule=s", later},
			},
			policies: map[string]retention.Policy{"s": {Last: 5}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sns := map[string]*snapshot.Snapshot{}
			var list []*snapshot.Snapshot
			for n, v := range tt.snaps {
				var tags []string
				for _, s := range v[1:] {
					tags = append(tags, s.(string))
				}
				sns[n] = snap(n, v[0].(time.Duration), tags...)
				list = append(list, sns[n])
			}
			good := map[string]bool{}
			for _, n := range tt.completed {
				good[sns[n].ID.String()] = true
			}
			p := MakePlan(Input{Snapshots: list, Policies: tt.policies, Completed: func(id string) bool { return good[id] },
				Now: now, KeepRecords: tt.keepRecs, OrphanAge: DefaultOrphanAge})
			if got := forgotten(p, sns); !slices.Equal(got, tt.want) {
				t.Errorf("forgot %v, want %v", got, tt.want)
			}
			for i := 1; i < len(p.Forget); i++ {
				if p.Forget[i].Time.Before(p.Forget[i-1].Time) {
					t.Errorf("not oldest first: %v", p.Forget)
				}
			}
		})
	}
}

func TestMakePlanProtects(t *testing.T) {
	good := snap("good", 4*time.Hour, "backup=s-1", "schedule=s")
	bad := snap("bad", 2*time.Hour, "backup=s-2", "schedule=s")
	p := MakePlan(Input{Snapshots: []*snapshot.Snapshot{good, bad}, Policies: map[string]retention.Policy{"s": {Last: 1}},
		Completed: func(id string) bool { return id == good.ID.String() }, Now: now})
	if len(p.Forget) != 0 {
		t.Errorf("forgot %v", p.Forget)
	}
	if len(p.Schedules) != 1 || p.Schedules[0].Protected != "s-1" || p.Schedules[0].Kept != 2 {
		t.Errorf("schedules %+v", p.Schedules)
	}
	if d := (Forget{Kind: KindBackup, Backup: "s-1", ID: good.ID.String(), Reason: ReasonPolicy, Detail: "keep 1 latest snapshots"}).Describe(); !strings.HasPrefix(d, "backup s-1 (snapshot ") {
		t.Errorf("describe: %s", d)
	}
}
