package schedule

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-backup/cairn/retention"
)

// RetentionFlags are the forget options a schedule keeps for the
// maintenance job, by the names `cairn forget` gives them; Spec.Retention
// maps these names to the values given.
var RetentionFlags = []string{
	"keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly",
	"keep-within", "keep-within-hourly", "keep-within-daily", "keep-within-weekly", "keep-within-monthly", "keep-within-yearly",
}

// RetentionPolicy turns a schedule's stored retention into a policy. The
// map comes back from the cluster (anyone who may edit the CronJob wrote
// it): unknown names and bad values are errors, so that a policy is never
// applied half-understood.
func RetentionPolicy(m map[string]string) (retention.Policy, error) {
	var p retention.Policy
	counts := map[string]*int{
		"keep-last": &p.Last, "keep-hourly": &p.Hourly, "keep-daily": &p.Daily,
		"keep-weekly": &p.Weekly, "keep-monthly": &p.Monthly, "keep-yearly": &p.Yearly,
	}
	withins := map[string]*retention.Duration{
		"keep-within": &p.Within, "keep-within-hourly": &p.WithinHourly, "keep-within-daily": &p.WithinDaily,
		"keep-within-weekly": &p.WithinWeekly, "keep-within-monthly": &p.WithinMonthly, "keep-within-yearly": &p.WithinYearly,
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := strings.TrimSpace(m[k])
		switch {
		case counts[k] != nil:
			n, err := parseCount(v)
			if err != nil {
				return p, fmt.Errorf("%w: retention --%s %q: %v", ErrSchedule, k, v, err)
			}
			*counts[k] = n
		case withins[k] != nil:
			d, err := retention.ParseDuration(v)
			if err != nil {
				return p, fmt.Errorf("%w: retention --%s: %v", ErrSchedule, k, err)
			}
			*withins[k] = d
		default:
			return p, fmt.Errorf("%w: unknown retention option %q (known: %s)", ErrSchedule, k, strings.Join(RetentionFlags, ", "))
		}
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%w: %v", ErrSchedule, err)
	}
	return p, nil
}

func parseCount(s string) (int, error) {
	if s == "unlimited" {
		return retention.Unlimited, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < retention.Unlimited || n > 1<<20 {
		return 0, fmt.Errorf("want a number of backups, or -1 or \"unlimited\" for all")
	}
	return n, nil
}
