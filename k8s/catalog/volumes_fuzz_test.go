package catalog

import (
	"encoding/json"
	"path"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/k8s/layout"
)

// FuzzVolumeRefAndBackupInfo: a volume argument and a backup.json from a
// hostile repository never panic, and a volume entry that a reference
// matches always names a path of exactly /volumes/<ns>/<pod>/<volume>, so
// export-volume and the mount never reach another part of the snapshot.
func FuzzVolumeRefAndBackupInfo(f *testing.F) {
	f.Add("shop/data", []byte(`{"volumes":[{"namespace":"shop","pod":"web-0","volume":"v","pvc":"data"}]}`))
	f.Add("shop/web-0/v", []byte(`{"volumes":[{"namespace":"shop","pod":"..","volume":"v","pvc":"shop/data"}]}`))
	f.Add("a/b/c", []byte(`{"volumes":[{"namespace":"a","pod":"b/../../resources","volume":"c"}]}`))
	f.Fuzz(func(t *testing.T, ref string, info []byte) {
		r, err := ParseVolumeRef(ref)
		if err != nil {
			return
		}
		var bi layout.BackupInfo
		if json.Unmarshal(info, &bi) != nil {
			return
		}
		for i := range bi.Volumes {
			v := &bi.Volumes[i]
			if !r.matches(v) {
				continue
			}
			p := v.Path()
			parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
			if path.Clean(p) != p || len(parts) != 4 || "/"+parts[0] != layout.VolumesPath {
				t.Fatalf("%q matches entry %+v whose path %q leaves /volumes/<ns>/<pod>/<volume>", ref, *v, p)
			}
		}
	})
}
