package metrics

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

// The example alerts parse as a Prometheus rules file and use only metric
// names the agent exports, among them the last-success gauge and the
// failed volume backups counter.
func TestExampleAlerts(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/examples/prometheus-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr string
				For         string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	if err := yaml.UnmarshalStrict(raw, &file); err != nil {
		t.Fatalf("not a rules file: %v", err)
	}
	names := NewAgent().Registry.Names()
	used := map[string]bool{}
	re := regexp.MustCompile(`\bcairn_[a-z_]+`)
	if len(file.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" {
				t.Errorf("rule %+v lacks alert, expr or severity", r)
			}
			ms := re.FindAllString(r.Expr, -1)
			if len(ms) == 0 {
				t.Errorf("%s uses no cairn metric", r.Alert)
			}
			for _, m := range ms {
				if !slices.Contains(names, m) {
					t.Errorf("%s uses %s, which the agent does not export", r.Alert, m)
				}
				used[m] = true
			}
		}
	}
	for _, m := range []string{BackupLastSuccess, VolumeBackupsTotal} {
		if !used[m] {
			t.Errorf("no example alert uses %s", m)
		}
	}
}
