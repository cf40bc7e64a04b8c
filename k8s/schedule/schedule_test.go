package schedule

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestTranslate(t *testing.T) {
	for _, tc := range []struct{ in, expr, tz, err string }{
		{in: "0 */6 * * *", expr: "0 */6 * * *"},
		{in: "@every 6h", expr: "0 */6 * * *"},
		{in: "@every 15m", expr: "*/15 * * * *"},
		{in: "@every 1m", expr: "* * * * *"},
		{in: "@every 1h", expr: "0 * * * *"},
		{in: "@every 1d", expr: "0 0 * * *"},
		{in: "@every 24h", expr: "0 0 * * *"},
		{in: "@every 7d", expr: "0 0 * * 0"},
		{in: "@every 7h", err: "cannot repeat every 7 hours evenly"},
		{in: "@every 7m", err: "cannot repeat every 7 minutes evenly"},
		{in: "@every 90m", err: "not whole hours"},
		{in: "@every 30s", err: "whole number of minutes"},
		{in: "@every 2d", err: "months differ"},
		{in: "@every soon", err: "give a duration"},
		{in: "CRON_TZ=Europe/Paris 0 3 * * *", expr: "0 3 * * *", tz: "Europe/Paris"},
		{in: "TZ=UTC @daily", expr: "@daily", tz: "UTC"},
		{in: "CRON_TZ=Europe/Paris @every 6h", expr: "0 */6 * * *", tz: "Europe/Paris"},
		{in: "CRON_TZ=Mars/Olympus 0 3 * * *", err: "unknown time zone"},
		{in: "@weekly", expr: "@weekly"},
		{in: "@fortnightly", err: "unknown macro"},
		{in: "0 3 * *", err: "4 fields, want 5"},
		{in: "60 * * * *", err: "minute: \"60\""},
		{in: "0 24 * * *", err: "hour"},
		{in: "0 0 0 * *", err: "day of month"},
		{in: "0 0 * 13 *", err: "month"},
		{in: "0 0 * * 7", err: "day of week"}, // as the API server says
		{in: "5-1 * * * *", err: "backwards"},
		{in: "*/0 * * * *", err: "bad step"},
		{in: "0 0 * jan-mar mon-fri", expr: "0 0 * jan-mar mon-fri"},
		{in: "0,30 9-17/2 ? * 0", expr: "0,30 9-17/2 ? * 0"},
	} {
		got, err := Translate(tc.in)
		if tc.err != "" {
			if err == nil || !errors.Is(err, ErrSchedule) || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q: error %v, want one line with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got.Expr != tc.expr || got.TimeZone != tc.tz {
			t.Errorf("%q: %q tz %q, %v; want %q tz %q", tc.in, got.Expr, got.TimeZone, err, tc.expr, tc.tz)
		}
	}
}

func TestNext(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	from := time.Date(2026, 3, 28, 22, 30, 0, 0, time.UTC) // a Saturday; Paris goes to summer time the next night
	for _, tc := range []struct {
		expr string
		loc  *time.Location
		want time.Time
	}{
		{"0 */6 * * *", nil, time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)},
		{"*/15 * * * *", nil, time.Date(2026, 3, 28, 22, 45, 0, 0, time.UTC)},
		{"0 3 * * *", paris, time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},   // 03:00 CEST
		{"30 2 * * *", paris, time.Date(2026, 3, 30, 0, 30, 0, 0, time.UTC)}, // 02:30 does not exist on the 29th
		{"0 0 * * mon", nil, time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC)},
		{"0 0 1 * mon", nil, time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC)}, // both day fields set: either
		{"0 0 */2 * mon", nil, time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)},
		{"0 0 * * sun", nil, time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)},
		{"@yearly", nil, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"0 0 29 2 *", nil, time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"0 0 30 2 *", nil, time.Time{}},
	} {
		c, err := Parse(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Next(from, tc.loc); !got.Equal(tc.want) {
			t.Errorf("%s in %v: next %v, want %v", tc.expr, tc.loc, got.UTC(), tc.want)
		}
	}
}

func TestCronJob(t *testing.T) {
	o := Options{Name: "nightly", Namespace: "cairn-system", Schedule: "CRON_TZ=Europe/Paris @every 6h",
		Image: "cairn:1", ServiceAccount: "cairn", Secret: "cairn-repository",
		BackupArgs: []string{"--include-namespaces", "shop"}, TTL: "168h", Paused: true, RepositoryDir: "/srv/repo"}
	cj, err := CronJob(o)
	if err != nil {
		t.Fatal(err)
	}
	str := func(f ...string) string { s, _, _ := unstructured.NestedString(cj.Object, f...); return s }
	if str("spec", "schedule") != "0 */6 * * *" || str("spec", "timeZone") != "Europe/Paris" || str("spec", "concurrencyPolicy") != "Forbid" {
		t.Errorf("spec %v", cj.Object["spec"])
	}
	if s, _, _ := unstructured.NestedBool(cj.Object, "spec", "suspend"); !s {
		t.Error("not suspended")
	}
	pod, _, _ := unstructured.NestedMap(cj.Object, "spec", "jobTemplate", "spec", "template", "spec")
	c := pod["containers"].([]any)[0].(map[string]any)
	var args []string
	for _, a := range c["args"].([]any) {
		args = append(args, a.(string))
	}
	if want := []string{"cluster", "backup", "--schedule-name", "nightly", "--ttl", "168h", "--include-namespaces", "shop"}; !slices.Equal(args, want) {
		t.Errorf("args %q", args)
	}
	if pod["serviceAccountName"] != "cairn" || !strings.Contains(str("metadata", "annotations", AnnotationSpec), `"timeZone":"Europe/Paris"`) {
		t.Errorf("pod %v, annotations %v", pod, cj.GetAnnotations())
	}
	spec, ok := ReadSpec(cj)
	if !ok || spec.Cron != "0 */6 * * *" || spec.Schedule != o.Schedule || !slices.Equal(spec.BackupArgs, o.BackupArgs) {
		t.Errorf("spec %+v", spec)
	}
	job, err := JobFrom(cj, time.Unix(1_700_000_000, 0))
	if err != nil || job.GetName() != "nightly-s44we8" || job.GetOwnerReferences()[0].Kind != "CronJob" || job.GetLabels()[LabelSchedule] != "nightly" {
		t.Errorf("job %v %v", job, err)
	}

	for _, bad := range []Options{
		{Name: strings.Repeat("a", 53), Schedule: "@daily"},
		{Name: "Nightly", Schedule: "@daily"},
		{Name: "n", Schedule: "@every 7h"},
		{Name: "n", Schedule: "@daily"}, // no image etc.
	} {
		if _, err := CronJob(bad); !errors.Is(err, ErrSchedule) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	long := strings.Repeat("n", MaxNameLen)
	if err := ValidateName(long); err != nil || len(BackupName(long, time.Now())) != 63 || ValidateName(long+"n") == nil {
		t.Errorf("%d-character names: %v", MaxNameLen, err)
	}
	if n := BackupName("nightly", time.Date(2026, 12, 6, 1, 2, 3, 0, time.FixedZone("x", 3600))); n != "nightly-20261206000203" {
		t.Errorf("backup name %s", n)
	}
}

func TestRetentionPolicy(t *testing.T) {
	for _, tc := range []struct {
		in   map[string]string
		want string // the policy's String, or the error's text
		ok   bool
	}{
		{nil, "keep all snapshots (no policy)", true},
		{map[string]string{"keep-last": "7", "keep-daily": "unlimited"}, "keep 7 latest, all daily snapshots", true},
		{map[string]string{"keep-within-weekly": "1y"}, "keep weekly snapshots within 1y of the newest", true},
		{map[string]string{"keep-last": "-2"}, "retention --keep-last", false},
		{map[string]string{"keep-last": "ten"}, "want a number of backups", false},
		{map[string]string{"keep-within": "soon"}, "retention --keep-within", false},
		{map[string]string{"keep-tag": "a"}, "unknown retention option \"keep-tag\"", false},
	} {
		p, err := RetentionPolicy(tc.in)
		switch {
		case tc.ok && (err != nil || p.String() != tc.want):
			t.Errorf("%v: %q, %v; want %q", tc.in, p.String(), err, tc.want)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrSchedule)):
			t.Errorf("%v: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestCronJobRetentionAndMaintenance(t *testing.T) {
	o := Options{Name: "nightly", Namespace: "cairn-system", Schedule: "@daily", Image: "cairn:1", ServiceAccount: "cairn", Secret: "s",
		Retention: map[string]string{"keep-last": "3"}}
	cj, err := CronJob(o)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := ReadSpec(cj); !ok || s.Retention["keep-last"] != "3" {
		t.Errorf("spec %+v", s)
	}
	o.Retention = map[string]string{"keep-last": "lots"}
	if _, err := CronJob(o); err == nil {
		t.Error("a bad policy made a CronJob")
	}
	o.Schedule, o.RepositoryDir = "CRON_TZ=Europe/Paris 0 4 * * *", "/srv/repo"
	m, err := MaintenanceCronJob(o, []string{"--max-unused=10%"})
	if err != nil {
		t.Fatal(err)
	}
	if m.GetName() != MaintenanceName || m.GetLabels()[LabelMaintenance] != "true" || m.GetLabels()[LabelSchedule] != "" {
		t.Errorf("name %s, labels %v", m.GetName(), m.GetLabels())
	}
	cs, _, _ := unstructured.NestedSlice(m.Object, "spec", "jobTemplate", "spec", "template", "spec", "containers")
	args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	if !slices.Equal(args, []string{"cluster", "maintenance", "run", "--namespace", "cairn-system", "--max-unused=10%"}) {
		t.Errorf("args %q", args)
	}
	if tz, _, _ := unstructured.NestedString(m.Object, "spec", "timeZone"); tz != "Europe/Paris" {
		t.Errorf("time zone %q", tz)
	}
	if _, err := MaintenanceCronJob(Options{Namespace: "x", Schedule: "0 3 * * *"}, nil); err == nil {
		t.Error("made a CronJob without an image")
	}
}
