// Package schedule is the pure half of `cairn cluster schedule`: what a
// user may write as a schedule (cron, macros, @every, CRON_TZ=/TZ=) turned
// into what a Kubernetes CronJob accepts, the next run of an expression,
// and the CronJob (and its first Job) built from a schedule's options.
// It imports no client: the CLI applies what it builds.
package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/retention"
)

// ErrSchedule marks a schedule that cannot be run by a CronJob.
var ErrSchedule = errors.New("invalid schedule")

// Cron is a parsed five-field expression: one bit per allowed value.
type Cron struct {
	minute, hour, dom, month, dow uint64
	// domStar/dowStar: the field started with * (or ?); cron then ANDs the
	// day fields, otherwise a day matching either one runs.
	domStar, dowStar bool
}

// Translated is a user's schedule as a CronJob takes it.
type Translated struct {
	Expr     string // spec.schedule: five fields or a macro, no TZ prefix
	TimeZone string // spec.timeZone, "" for the controller's (UTC)
	Cron     Cron
}

// macros are the descriptors the CronJob controller (robfig/cron's
// ParseStandard) accepts besides five fields.
var macros = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
	"@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

// Translate turns what the user wrote into a CronJob's schedule and time
// zone: "CRON_TZ=Europe/Paris 0 3 * * *" or "TZ=…" becomes the time zone
// (spec.timeZone; the API refuses TZ in the schedule), "@every D" becomes
// the cron expression that repeats every D when cron can (D divides an
// hour or a day evenly, or is a week); anything else must be five valid
// fields or a macro.
func Translate(s string) (Translated, error) {
	var t Translated
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "CRON_TZ=") || strings.HasPrefix(s, "TZ=") {
		tz, rest, _ := strings.Cut(s, " ")
		tz = tz[strings.Index(tz, "=")+1:]
		if tz == "" {
			return t, fmt.Errorf("%w %q: no time zone after TZ=; write e.g. CRON_TZ=Europe/Paris 0 3 * * *", ErrSchedule, s)
		}
		if _, err := time.LoadLocation(tz); err != nil {
			return t, fmt.Errorf("%w %q: unknown time zone %q: use an IANA name such as Europe/Paris or UTC", ErrSchedule, s, tz)
		}
		t.TimeZone, s = tz, strings.TrimSpace(rest)
	}
	if d, ok := strings.CutPrefix(s, "@every"); ok {
		expr, err := every(strings.TrimSpace(d))
		if err != nil {
			return t, err
		}
		s = expr
	}
	c, err := Parse(s)
	if err != nil {
		return t, err
	}
	t.Expr, t.Cron = s, c
	return t, nil
}

// every translates "@every D". Cron counts from the top of the hour, the
// day or the week, so only intervals that divide those evenly repeat
// exactly every D.
func every(d string) (string, error) {
	dur, err := retention.ParseTTL(d)
	if err != nil || dur <= 0 {
		return "", fmt.Errorf("%w: @every %s: give a duration such as 15m, 6h or 1d", ErrSchedule, d)
	}
	switch {
	case dur%time.Minute != 0:
		return "", fmt.Errorf("%w: @every %s: cron runs at whole minutes; use a whole number of minutes", ErrSchedule, d)
	case dur < time.Hour:
		m := int(dur / time.Minute)
		if 60%m != 0 {
			return "", fmt.Errorf("%w: @every %s: cron cannot repeat every %d minutes evenly (%d does not divide 60); use one that does (5m, 10m, 15m, 20m, 30m) or write a cron expression", ErrSchedule, d, m, m)
		}
		if m == 1 {
			return "* * * * *", nil
		}
		return fmt.Sprintf("*/%d * * * *", m), nil
	case dur%time.Hour != 0:
		return "", fmt.Errorf("%w: @every %s: cron cannot repeat every %s evenly (not whole hours); use whole hours that divide 24 or write a cron expression", ErrSchedule, d, dur)
	case dur < 24*time.Hour:
		h := int(dur / time.Hour)
		if 24%h != 0 {
			return "", fmt.Errorf("%w: @every %s: cron cannot repeat every %d hours evenly (%d does not divide 24); use 1h, 2h, 3h, 4h, 6h, 8h or 12h, or write a cron expression", ErrSchedule, d, h, h)
		}
		if h == 1 {
			return "0 * * * *", nil
		}
		return fmt.Sprintf("0 */%d * * *", h), nil
	case dur == 24*time.Hour:
		return "0 0 * * *", nil
	case dur == 7*24*time.Hour:
		return "0 0 * * 0", nil
	}
	return "", fmt.Errorf("%w: @every %s: cron cannot repeat every %s evenly (months differ in length); use 1d or 7d, or write a cron expression", ErrSchedule, d, dur)
}

type field struct {
	name     string
	min, max int
	names    map[string]int
}

var (
	monthNames = map[string]int{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}
	dayNames   = map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
	fields     = [5]field{
		{"minute", 0, 59, nil}, {"hour", 0, 23, nil}, {"day of month", 1, 31, nil},
		{"month", 1, 12, monthNames}, {"day of week", 0, 6, dayNames}, // robfig/cron: no 7 for Sunday
	}
)

// Parse validates a five-field expression (or a macro) as the CronJob
// controller reads it: lists, ranges, steps, month and day names, ? for
// *, days of week 0-6 (the API server refuses 7).
func Parse(expr string) (Cron, error) {
	var c Cron
	s := strings.TrimSpace(expr)
	if m, ok := macros[strings.ToLower(s)]; ok {
		s = m
	} else if strings.HasPrefix(s, "@") {
		return c, fmt.Errorf("%w %q: unknown macro; use @hourly, @daily, @weekly, @monthly, @yearly, @every D or five fields", ErrSchedule, expr)
	}
	parts := strings.Fields(s)
	if len(parts) != 5 {
		return c, fmt.Errorf("%w %q: %d fields, want 5 (minute hour day-of-month month day-of-week)", ErrSchedule, expr, len(parts))
	}
	bits := [5]*uint64{&c.minute, &c.hour, &c.dom, &c.month, &c.dow}
	for i, p := range parts {
		b, star, err := parseField(p, fields[i])
		if err != nil {
			return c, fmt.Errorf("%w %q: %s", ErrSchedule, expr, err)
		}
		*bits[i] = b
		switch i {
		case 2:
			c.domStar = star
		case 4:
			c.dowStar = star
		}
	}
	return c, nil
}

func parseField(s string, f field) (bits uint64, star bool, err error) {
	for _, item := range strings.Split(s, ",") {
		rng, stepStr, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			if step, err = strconv.Atoi(stepStr); err != nil || step <= 0 {
				return 0, false, fmt.Errorf("%s: bad step %q", f.name, stepStr)
			}
		}
		lo, hi := f.min, f.max
		switch {
		case rng == "*" || rng == "?": // robfig/cron takes ? in any field
			star = star || step == 1 // robfig/cron: "*/n" is not a star
		default:
			a, b, isRange := strings.Cut(rng, "-")
			if lo, err = value(a, f); err != nil {
				return 0, false, err
			}
			hi = lo
			if isRange {
				if hi, err = value(b, f); err != nil {
					return 0, false, err
				}
			} else if hasStep {
				hi = f.max // "a/n": from a to the end
			}
			if hi < lo {
				return 0, false, fmt.Errorf("%s: range %q runs backwards", f.name, rng)
			}
		}
		for v := lo; v <= hi; v += step {
			bits |= 1 << uint(v)
		}
	}
	return bits, star, nil
}

func value(s string, f field) (int, error) {
	if v, ok := f.names[strings.ToLower(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < f.min || v > f.max {
		return 0, fmt.Errorf("%s: %q is not a value from %d to %d", f.name, s, f.min, f.max)
	}
	return v, nil
}

// Next is the first time after t at which c runs, in loc (nil: UTC);
// the zero time if none within five years (e.g. 30 February).
func (c Cron) Next(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc).Truncate(time.Minute).Add(time.Minute)
	end := t.AddDate(5, 0, 0)
	for t.Before(end) {
		switch {
		case c.month&(1<<uint(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
		case !c.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
		case c.hour&(1<<uint(t.Hour())) == 0:
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, loc)
		case c.minute&(1<<uint(t.Minute())) == 0:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}

func (c Cron) dayMatches(t time.Time) bool {
	dom := c.dom&(1<<uint(t.Day())) != 0
	dow := c.dow&(1<<uint(t.Weekday())) != 0
	if c.domStar || c.dowStar {
		return dom && dow
	}
	return dom || dow
}
