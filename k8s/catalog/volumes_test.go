package catalog

import (
	"errors"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/layout"
)

func TestParseVolumeRef(t *testing.T) {
	for in, want := range map[string]VolumeRef{
		"shop/data":       {Namespace: "shop", PVC: "data"},
		"shop/web-0/data": {Namespace: "shop", Pod: "web-0", Volume: "data"},
	} {
		if got, err := ParseVolumeRef(in); err != nil || got != want {
			t.Errorf("ParseVolumeRef(%q) = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "shop", "shop/", "/data", "a/b/c/d", "shop/../x", "shop/./x", "shop//x"} {
		if _, err := ParseVolumeRef(bad); err == nil {
			t.Errorf("ParseVolumeRef(%q) accepted", bad)
		}
	}
}

func TestFindVolume(t *testing.T) {
	info := &layout.BackupInfo{Volumes: []layout.VolumeInfo{
		{Namespace: "shop", Pod: "web-0", Volume: "files", PVC: "shared"},      // not copied here
		{Namespace: "shop", Pod: "web-1", Volume: "files", PVC: "shop/shared"}, // the copy
		{Namespace: "shop", Pod: "web-1", Volume: "tmp"},
		{Namespace: "shop", Pod: "db-0", Volume: "pg", PVC: "pg", Error: "pod db-0 is not running"},
		{Namespace: "other", Pod: "x", Volume: "files", PVC: "shared"},
		{Namespace: "shop", Pod: "..", Volume: "..", PVC: "evil"}, // would be /volumes
	}}
	has := func(v *layout.VolumeInfo) bool { return v.Pod != "web-0" }

	v, err := FindVolume("b1", info, VolumeRef{Namespace: "shop", PVC: "shared"}, has)
	if err != nil || v.Pod != "web-1" || v.Path() != "/volumes/shop/web-1/files" {
		t.Errorf("shared claim: %+v, %v", v, err)
	}
	if v, err := FindVolume("b1", info, VolumeRef{Namespace: "shop", Pod: "web-1", Volume: "tmp"}, has); err != nil || v.Claim() != "" {
		t.Errorf("pod volume: %+v, %v", v, err)
	}
	_, err = FindVolume("b1", info, VolumeRef{Namespace: "shop", PVC: "pg"}, has)
	if !errors.Is(err, ErrVolumeFailed) || !strings.Contains(err.Error(), "pod db-0 is not running") {
		t.Errorf("failed volume: %v", err)
	}
	_, err = FindVolume("b1", info, VolumeRef{Namespace: "shop", PVC: "nope"}, has)
	if !errors.Is(err, ErrVolumeNotFound) || !strings.Contains(err.Error(), "shop/web-1/files (claim shop/shared)") {
		t.Errorf("missing claim: %v", err)
	}
	if v, err := FindVolume("b1", info, VolumeRef{Namespace: "shop", PVC: "evil"}, nil); err == nil {
		t.Errorf("a claim whose path leads elsewhere was found: %s", v.Path())
	}
	// Listed, but no copy anywhere: damaged, not "failed".
	_, err = FindVolume("b1", info, VolumeRef{Namespace: "shop", Pod: "web-0", Volume: "files"}, has)
	if !errors.Is(err, ErrVolumeNotFound) || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("listed without files: %v", err)
	}
	if _, err := FindVolume("b1", &layout.BackupInfo{}, VolumeRef{Namespace: "a", PVC: "b"}, nil); err == nil || !strings.Contains(err.Error(), "no volume data") {
		t.Errorf("backup without volumes: %v", err)
	}
}
