package period_test

import (
	"errors"
	"testing"
	"time"

	"github.com/spendgate/spendgate/internal/period"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestContaining(t *testing.T) {
	ny, kol := mustLoad(t, "America/New_York"), mustLoad(t, "Asia/Kolkata")
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name       string
		kind       period.Kind
		t          string
		loc        *time.Location
		start, end string
		hours      float64
	}{
		{"spring forward day is 23h", period.Day, "2026-03-08T12:00:00Z", ny, "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z", 23},
		{"fall back day is 25h", period.Day, "2026-11-01T12:00:00Z", ny, "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z", 25},
		{"kolkata day", period.Day, "2026-05-19T18:30:00Z", kol, "2026-05-19T18:30:00Z", "2026-05-20T18:30:00Z", 24},
		{"kolkata last instant of a day", period.Day, "2026-05-19T18:29:59Z", kol, "2026-05-18T18:30:00Z", "2026-05-19T18:30:00Z", 24},
		{"iso week from a sunday", period.Week, "2026-05-24T12:00:00Z", time.UTC, "2026-05-18T00:00:00Z", "2026-05-25T00:00:00Z", 168},
		{"iso week from a monday", period.Week, "2026-05-18T00:00:00Z", time.UTC, "2026-05-18T00:00:00Z", "2026-05-25T00:00:00Z", 168},
		{"month across dst", period.Month, "2026-03-31T12:00:00Z", ny, "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z", 743},
		{"december rolls into january", period.Month, "2026-12-31T23:59:59Z", time.UTC, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z", 744},
		{"february leap year", period.Month, "2028-02-15T00:00:00Z", time.UTC, "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z", 696},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := period.Containing(tc.kind, at(tc.t), tc.loc)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Start.Equal(at(tc.start)) || !r.End.Equal(at(tc.end)) {
				t.Fatalf("got %s, want [%s, %s)", r, tc.start, tc.end)
			}
			if got := r.End.Sub(r.Start).Hours(); got != tc.hours {
				t.Fatalf("length %vh, want %vh", got, tc.hours)
			}
			if at(tc.t).Before(r.Start) || !at(tc.t).Before(r.End) {
				t.Fatalf("%s does not contain %s", r, tc.t)
			}
			// The next period starts where this one ends.
			if n, _ := period.Containing(tc.kind, r.End, tc.loc); !n.Start.Equal(r.End) {
				t.Fatalf("next period starts %s, want %s", n.Start, r.End)
			}
		})
	}
}

func TestDates(t *testing.T) {
	kol := mustLoad(t, "Asia/Kolkata")
	r, err := period.Dates("2026-05-01", "2026-05-31", kol)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Start.UTC().Format(time.RFC3339), "2026-04-30T18:30:00Z"; got != want {
		t.Fatalf("start %s, want %s", got, want)
	}
	if got, want := r.EndDate(), "2026-05-31"; got != want || r.StartDate() != "2026-05-01" {
		t.Fatalf("dates %s..%s", r.StartDate(), got)
	}
	if _, err := period.Dates("2026-06-01", "2026-05-31", kol); !errors.Is(err, period.ErrBadRange) {
		t.Fatalf("from after to: %v", err)
	}
	for _, bad := range [][2]string{{"2026-02-30", "2026-03-01"}, {"yesterday", "2026-03-01"}, {"2026-03-01", "2026/03/02"}} {
		if _, err := period.Dates(bad[0], bad[1], kol); err == nil {
			t.Errorf("Dates(%q, %q): want an error", bad[0], bad[1])
		}
	}
	if _, err := period.ParseKind("year"); !errors.Is(err, period.ErrUnknownKind) {
		t.Fatalf("ParseKind(year) = %v", err)
	}
}
