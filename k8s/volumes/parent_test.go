package volumes

import (
	"slices"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/k8s/volapi"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
)

func TestSnapshotTags(t *testing.T) {
	h := volapi.ParentHint{PVC: "shop/db", Namespace: "shop", Workload: "StatefulSet/db", Volume: "data"}
	got := SnapshotTags("nightly", volapi.PodRef{Namespace: "shop", Name: "db-0"}, h, []string{"team=a"})
	want := []string{"volume-of=nightly", "pvc=shop/db", "namespace=shop", "workload=StatefulSet/db", "volume=data", "pod=shop/db-0", "team=a"}
	if !slices.Equal(got, want) {
		t.Errorf("tags %v\nwant %v", got, want)
	}
	if got := SnapshotTags("b", volapi.PodRef{Namespace: "n", Name: "p"}, volapi.ParentHint{Namespace: "n", Volume: "v"}, nil); len(got) != 4 {
		t.Errorf("empty hint fields tagged: %v", got)
	}
}

func TestChooseParent(t *testing.T) {
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	// sn makes a snapshot with id byte n, made n hours after base.
	sn := func(n byte, tags ...string) *snapshot.Snapshot {
		return &snapshot.Snapshot{ID: repo.ID{n}, Time: base.Add(time.Duration(n) * time.Hour), Tags: tags}
	}
	claimOld := sn(1, "volume-of=a", "pvc=shop/db", "namespace=shop", "workload=StatefulSet/db", "volume=data")
	claimNew := sn(3, "volume-of=b", "pvc=shop/db", "namespace=shop", "workload=StatefulSet/db", "volume=data")
	otherClaim := sn(4, "volume-of=b", "pvc=shop/logs", "namespace=shop", "workload=StatefulSet/db", "volume=logs")
	webOld := sn(2, "volume-of=a", "namespace=shop", "workload=Deployment/web", "volume=cache")
	webNew := sn(5, "volume-of=b", "namespace=shop", "workload=Deployment/web", "volume=cache")
	webOtherNS := sn(6, "volume-of=b", "namespace=dev", "workload=Deployment/web", "volume=cache")
	clusterBackup := sn(7, "backup=b", "pvc=shop/db", "namespace=shop", "workload=Deployment/web", "volume=cache") // not a volume snapshot
	sameTime1, sameTime2 := sn(8, "volume-of=c", "pvc=shop/tie"), &snapshot.Snapshot{ID: repo.ID{9}, Time: base.Add(8 * time.Hour), Tags: []string{"volume-of=c", "pvc=shop/tie"}}
	all := []*snapshot.Snapshot{claimOld, webOld, claimNew, otherClaim, webNew, webOtherNS, clusterBackup, sameTime1, sameTime2}

	tests := []struct {
		name string
		hint volapi.ParentHint
		want *snapshot.Snapshot
		how  string
	}{
		{"same claim, newest", volapi.ParentHint{PVC: "shop/db", Namespace: "shop", Workload: "StatefulSet/db", Volume: "data"}, claimNew, ParentSameClaim},
		{"claim beats a newer workload match", volapi.ParentHint{PVC: "shop/db", Namespace: "shop", Workload: "Deployment/web", Volume: "cache"}, claimNew, ParentSameClaim},
		{"new claim falls back to the workload", volapi.ParentHint{PVC: "shop/db-new", Namespace: "shop", Workload: "StatefulSet/db", Volume: "logs"}, otherClaim, ParentSameWorkload},
		{"emptyDir of a replaced pod", volapi.ParentHint{Namespace: "shop", Workload: "Deployment/web", Volume: "cache"}, webNew, ParentSameWorkload},
		{"other namespace", volapi.ParentHint{Namespace: "dev", Workload: "Deployment/web", Volume: "cache"}, webOtherNS, ParentSameWorkload},
		{"volume name must match", volapi.ParentHint{Namespace: "shop", Workload: "Deployment/web", Volume: "tmp"}, nil, ""},
		{"workload must match", volapi.ParentHint{Namespace: "shop", Workload: "Deployment/api", Volume: "cache"}, nil, ""},
		{"incomplete hint matches nothing loose", volapi.ParentHint{Namespace: "shop", Volume: "cache"}, nil, ""},
		{"cluster backups are not volume parents", volapi.ParentHint{PVC: "shop/none", Namespace: "x"}, nil, ""},
		{"same time: higher ID, whatever the order", volapi.ParentHint{PVC: "shop/tie"}, sameTime2, ParentSameClaim},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, order := range [][]*snapshot.Snapshot{all, reversed(all)} {
				got, how := ChooseParent(order, tc.hint)
				if got != tc.want || how != tc.how {
					t.Fatalf("got %v (%q), want %v (%q)", id(got), how, id(tc.want), tc.how)
				}
			}
		})
	}
	if got, _ := ChooseParent(nil, tests[0].hint); got != nil {
		t.Error("parent from nothing")
	}
	if all[0] != claimOld {
		t.Error("ChooseParent reordered its input")
	}
}

func reversed(s []*snapshot.Snapshot) []*snapshot.Snapshot {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

func id(s *snapshot.Snapshot) string {
	if s == nil {
		return "none"
	}
	return s.ID.Str()
}
