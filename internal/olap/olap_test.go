package olap_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/olap"
	"github.com/spendgate/spendgate/internal/period"
	"github.com/spendgate/spendgate/internal/testenv"
)

func row(id, ts, service, op, cost string, seq uint64) olap.Row {
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		panic(err)
	}
	return olap.Row{Event: events.Event{
		EventID: id, TS: t, Service: service, Operation: op,
		CostUSD: decimal.RequireFromString(cost), Units: 3, Unit: "tokens",
		AttrKeys: []string{"business_id"}, AttrValues: []string{"b1"},
	}, StreamSeq: seq}
}

func TestMigrateIsIdempotent(t *testing.T) {
	c := testenv.ClickHouse(t)
	applied, err := c.Migrate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second Migrate applied %v, want nothing", applied)
	}
	ms, err := olap.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 || ms[0].Version != 1 {
		t.Fatalf("migrations = %+v", ms)
	}
}

func TestInsertAndStoredEventIDs(t *testing.T) {
	c := testenv.ClickHouse(t)
	ctx := context.Background()
	rows := []olap.Row{
		row("a", "2026-03-08T06:59:59Z", "openai", "chat_completion", "0.000000001", 1),
		row("b", "2026-03-08T07:00:00Z", "openai", "embeddings", "999999999.999999999", 2),
		row("c", "2026-03-09T12:00:00.5Z", "sendgrid", "send_email", "0.0008", 3),
	}
	if err := c.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	from, _ := time.Parse(time.RFC3339, "2026-03-08T00:00:00Z")
	to, _ := time.Parse(time.RFC3339, "2026-03-09T12:00:00.9Z")
	got, err := c.StoredEventIDs(ctx, []string{"a", "c", "zz"}, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["a"]; !ok || len(got) != 2 {
		t.Fatalf("StoredEventIDs = %v, want a and c", got)
	}
	if _, ok := got["c"]; !ok {
		t.Fatalf("StoredEventIDs = %v: c (ts with a fraction, at the range end) missing", got)
	}
	all := period.Range{Start: from, End: from.AddDate(0, 1, 0)}
	tot, err := c.Total(ctx, all, olap.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if want := decimal.RequireFromString("1000000000.000800000"); !tot.CostUSD.Equal(want) || tot.Events != 3 || tot.Units != 9 {
		t.Fatalf("Total = %v/%d/%d, want %v/3/9", tot.CostUSD, tot.Events, tot.Units, want)
	}
	raw, err := c.RawTotal(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	if !raw.CostUSD.Equal(tot.CostUSD) || raw.Events != tot.Events {
		t.Fatalf("raw %v/%d != rollup %v/%d", raw.CostUSD, raw.Events, tot.CostUSD, tot.Events)
	}
}

// Periods in a zone with DST and one with a half-hour offset sum exactly the
// events inside their local boundaries, from the rollups.
func TestSpendByPeriodInZones(t *testing.T) {
	c := testenv.ClickHouse(t)
	ctx := context.Background()
	rows := []olap.Row{
		// America/New_York, 2026-03-08 is 23 hours: 05:00Z to 04:00Z next day.
		row("ny-before", "2026-03-08T04:59:59Z", "openai", "chat_completion", "1", 1),
		row("ny-first", "2026-03-08T05:00:00Z", "openai", "chat_completion", "2", 2),
		row("ny-last", "2026-03-09T03:59:59Z", "openai", "embeddings", "4", 3),
		row("ny-after", "2026-03-09T04:00:00Z", "sendgrid", "send_email", "8", 4),
		// Asia/Kolkata, 2026-05-20 is 2026-05-19T18:30Z to 2026-05-20T18:30Z.
		row("in-before", "2026-05-19T18:29:59Z", "aws", "s3_storage", "16", 5),
		row("in-first", "2026-05-19T18:30:00Z", "aws", "s3_storage", "32", 6),
		row("in-last", "2026-05-20T18:29:59Z", "aws", "lambda_invoke", "64", 7),
		row("in-after", "2026-05-20T18:30:00Z", "aws", "s3_storage", "128", 8),
	}
	if err := c.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	kol, _ := time.LoadLocation("Asia/Kolkata")
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339Nano, s); return t }
	for _, tc := range []struct {
		name string
		kind period.Kind
		at   time.Time
		loc  *time.Location
		want string
	}{
		{"ny dst day", period.Day, at("2026-03-08T12:00:00Z"), ny, "6"},
		{"ny day before", period.Day, at("2026-03-07T12:00:00Z"), ny, "1"},
		{"ny march", period.Month, at("2026-03-20T12:00:00Z"), ny, "15"},
		{"kolkata day", period.Day, at("2026-05-20T00:00:00Z"), kol, "96"},
		{"kolkata next day", period.Day, at("2026-05-21T00:00:00Z"), kol, "128"},
		{"kolkata may", period.Month, at("2026-05-20T00:00:00Z"), kol, "240"},
		{"utc may 19", period.Day, at("2026-05-19T00:00:00Z"), time.UTC, "48"},
		{"kolkata iso week", period.Week, at("2026-05-20T00:00:00Z"), kol, "240"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := period.Containing(tc.kind, tc.at, tc.loc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Total(ctx, r, olap.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if want := decimal.RequireFromString(tc.want); !got.CostUSD.Equal(want) {
				t.Fatalf("Total(%s) = %s, want %s", r, got.CostUSD, want)
			}
			raw, err := c.RawTotal(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if !raw.CostUSD.Equal(got.CostUSD) {
				t.Fatalf("raw %s != rollup %s over %s", raw.CostUSD, got.CostUSD, r)
			}
		})
	}

	r, _ := period.Containing(period.Month, at("2026-05-20T00:00:00Z"), kol)
	bySvc, err := c.ByService(ctx, r, olap.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(bySvc) != 1 || bySvc[0].Service != "aws" || bySvc[0].Events != 4 {
		t.Fatalf("ByService = %+v", bySvc)
	}
	byOp, err := c.ByOperation(ctx, r, olap.Filter{Service: "aws"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%s/%s=%s %s/%s=%s", byOp[0].Service, byOp[0].Operation, byOp[0].CostUSD,
		byOp[1].Service, byOp[1].Operation, byOp[1].CostUSD); len(byOp) != 2 || got != "aws/s3_storage=176 aws/lambda_invoke=64" {
		t.Fatalf("ByOperation = %s", got)
	}
	// A user's value is a bound parameter: quotes cannot break out.
	if _, err := c.ByService(ctx, r, olap.Filter{Service: "x' OR 1=1 --"}); err != nil {
		t.Fatalf("quoted filter: %v", err)
	}
	// Sliding windows do not fall on bucket boundaries: whole buckets come
	// from the rollup, the partial ends from the raw table, exactly.
	for _, w := range [][2]string{
		{"2026-05-19T18:29:59Z", "2026-05-20T18:30:00Z"},   // one second into a bucket at each end
		{"2026-05-19T18:30:01Z", "2026-05-20T18:29:59Z"},   // drops the first and last events
		{"2026-03-08T04:59:59Z", "2026-03-08T05:00:00.5Z"}, // shorter than a bucket, sub-second end
		{"2026-03-08T04:50:00Z", "2026-05-20T18:35:00Z"},
	} {
		r := period.Range{Start: at(w[0]), End: at(w[1])}
		got, err := c.Total(ctx, r, olap.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := c.RawTotal(ctx, period.Range{Start: r.Start, End: r.End.Add(time.Second - 1).Truncate(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		if !got.CostUSD.Equal(raw.CostUSD) || got.Events != raw.Events {
			t.Errorf("Total(%s) = %s/%d, raw %s/%d", r, got.CostUSD, got.Events, raw.CostUSD, raw.Events)
		}
	}
	if got, _ := c.Total(ctx, period.Range{Start: at("2026-05-19T18:30:01Z"), End: at("2026-05-20T18:29:59Z")}, olap.Filter{}); !got.CostUSD.Equal(decimal.NewFromInt(0)) {
		t.Errorf("window without its end events = %s, want 0", got.CostUSD)
	}
}

var benchRows = 5000

func BenchmarkInsertEvents(b *testing.B) {
	c := testenv.ClickHouse(b)
	ctx := context.Background()
	rows := make([]olap.Row, benchRows)
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := range rows {
		rows[i] = olap.Row{Event: events.Event{
			EventID: fmt.Sprintf("ev-%d", i), TS: base.Add(time.Duration(i) * time.Second), Service: "openai",
			Operation: "chat_completion", CostUSD: decimal.New(int64(i)*1234, -9), Units: uint64(i), Unit: "tokens",
			AttrKeys: []string{"business_id", "model"}, AttrValues: []string{"biz-1", "gpt-4o"},
		}, StreamSeq: uint64(i)}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.InsertEvents(ctx, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "events/s")
}
