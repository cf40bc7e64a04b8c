package catalog

import "testing"

func TestParseItemPath(t *testing.T) {
	cases := []struct {
		p    string
		want BackupItem
		ok   bool
	}{
		{"/cluster/storageclasses.storage.k8s.io/fast.yaml", BackupItem{Resource: "storageclasses.storage.k8s.io", Name: "fast"}, true},
		{"/namespaces/app/configmaps/cfg.yaml", BackupItem{Resource: "configmaps", Namespace: "app", Name: "cfg"}, true},
		{"/namespaces/app/configmaps/cfg.json", BackupItem{}, false},
		{"/namespaces/app/configmaps", BackupItem{}, false},
		{"/cluster/x/.yaml", BackupItem{}, false},
		{"/other/x/y.yaml", BackupItem{}, false},
	}
	for _, c := range cases {
		got, ok := parseItemPath(c.p)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("parseItemPath(%q) = %+v, %v", c.p, got, ok)
		}
	}
}
