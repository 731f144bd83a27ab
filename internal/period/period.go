// Package period turns calendar periods (day, ISO week, month, custom date
// ranges) in a time zone into half-open UTC instants [Start, End). Boundaries
// are local midnights, so a day is 23 or 25 hours long across a DST change and
// starts at 18:30 UTC in Asia/Kolkata.
package period

import (
	"errors"
	"fmt"
	"time"
)

// Kind is a calendar period.
type Kind string

// The periods budgets and reports use.
const (
	Day   Kind = "day"
	Week  Kind = "week" // ISO 8601: Monday to Sunday
	Month Kind = "month"
)

// ErrUnknownKind is returned for a period other than day, week or month.
var ErrUnknownKind = errors.New("unknown period (want day, week or month)")

// ErrBadRange is returned for a custom range whose start is after its end.
var ErrBadRange = errors.New("--from is after --to")

// DateLayout is how dates are written on the command line and in reports.
const DateLayout = "2006-01-02"

// Range is the half-open interval [Start, End) of instants, with the time
// zone its dates are read in.
type Range struct {
	Kind  Kind // empty for a custom range
	Start time.Time
	End   time.Time
}

// ParseKind checks a period name.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case Day, Week, Month:
		return k, nil
	}
	return "", fmt.Errorf("%q: %w", s, ErrUnknownKind)
}

func midnight(y int, m time.Month, d int, loc *time.Location) time.Time {
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// Containing returns the period of kind k that contains t, in loc.
func Containing(k Kind, t time.Time, loc *time.Location) (Range, error) {
	t = t.In(loc)
	y, m, d := t.Date()
	switch k {
	case Day:
		return Range{Kind: k, Start: midnight(y, m, d, loc), End: midnight(y, m, d+1, loc)}, nil
	case Week:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return Range{Kind: k, Start: midnight(y, m, d-back, loc), End: midnight(y, m, d-back+7, loc)}, nil
	case Month:
		return Range{Kind: k, Start: midnight(y, m, 1, loc), End: midnight(y, m+1, 1, loc)}, nil
	}
	return Range{}, fmt.Errorf("%q: %w", k, ErrUnknownKind)
}

// Dates returns the custom range from the first instant of date from to the
// last instant of date to, both inclusive, as written YYYY-MM-DD in loc.
func Dates(from, to string, loc *time.Location) (Range, error) {
	f, err := time.ParseInLocation(DateLayout, from, loc)
	if err != nil {
		return Range{}, fmt.Errorf("bad --from date %q: want YYYY-MM-DD", from)
	}
	t, err := time.ParseInLocation(DateLayout, to, loc)
	if err != nil {
		return Range{}, fmt.Errorf("bad --to date %q: want YYYY-MM-DD", to)
	}
	if f.After(t) {
		return Range{}, fmt.Errorf("%s > %s: %w", from, to, ErrBadRange)
	}
	y, m, d := t.Date()
	return Range{Start: f, End: midnight(y, m, d+1, loc)}, nil
}

// StartDate and EndDate are the first and last dates of the range, in its zone.
func (r Range) StartDate() string { return r.Start.Format(DateLayout) }

// EndDate is the last date inside the range (the day before End).
func (r Range) EndDate() string { return r.End.Add(-time.Nanosecond).Format(DateLayout) }

func (r Range) String() string {
	return fmt.Sprintf("[%s, %s)", r.Start.Format(time.RFC3339), r.End.Format(time.RFC3339))
}
