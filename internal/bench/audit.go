package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"time"

	"github.com/spendgate/spendgate/internal/audit"
	"github.com/spendgate/spendgate/internal/config"
	"github.com/spendgate/spendgate/internal/gate"
	"github.com/spendgate/spendgate/internal/olap"
	"github.com/spendgate/spendgate/internal/period"
)

// AuditReport is the latency of the two commands operators run most, at
// one stored size.
type AuditReport struct {
	Stored        int
	SummaryP50    time.Duration
	SummaryP90    time.Duration
	CostsMonthP50 time.Duration
	CostsMonthP90 time.Duration
	RollupParts   uint64
}

const auditRuns = 25

// runAudit stores n events spread over this month (generated inside
// ClickHouse by INSERT … SELECT, so the materialized view fills the rollup as
// ingest's inserts do), then times what `audit summary` and `audit costs
// --period month` do after connecting: build the report from the rollups and
// render it.
func runAudit(ctx context.Context, o Options, n int) (AuditReport, error) {
	rep := AuditReport{Stored: n}
	ch, drop, err := scratchDB(ctx, o, fmt.Sprintf("auditbench_%d", n))
	if err != nil {
		return rep, err
	}
	defer drop()
	if _, err := ch.Migrate(ctx); err != nil {
		return rep, err
	}
	cfg, err := config.Load(config.New(), "")
	if err != nil {
		return rep, err
	}
	policy, err := gate.NewPolicy(cfg)
	if err != nil {
		return rep, err
	}
	now := time.Now()
	month, _ := period.Containing(period.Month, now, policy.Location)
	span := int64(now.Sub(month.Start) / time.Second)
	if span < 3600 {
		span = 3600
	}
	start := time.Now()
	err = ch.Exec(ctx, fmt.Sprintf(`INSERT INTO {database}.cost_events
		(event_id, ts, service, operation, cost_usd, units, unit, attr_keys, attr_values, ingested_at, stream_seq)
		SELECT concat('bench-', toString(number)),
		       toDateTime(%d + intDiv(number * %d, %d)),
		       arrayElement(['openai', 'anthropic', 'sendgrid', 'twilio', 'aws', 'stripe', 'mapbox', 'algolia'], (number %% 8) + 1),
		       concat('op', toString(intDiv(number, 8) %% 4)),
		       toDecimal64(number %% 997, 9) / 1000,
		       number %% 5000, 'units', ['business_id'], [concat('biz-', toString(number %% 20))], now(), number
		FROM system.numbers LIMIT %d`, month.Start.Unix(), span, n, n))
	if err != nil {
		return rep, fmt.Errorf("storing %d events: %w", n, err)
	}
	fmt.Fprintf(o.Out, "  stored %d events in %s\n", n, time.Since(start).Round(time.Millisecond))
	// As in a live system, let ClickHouse's background merges fold the
	// freshly inserted rollup parts before timing (at most 60s).
	var parts, merging uint64
	for deadline, idle := time.Now().Add(60*time.Second), 0; time.Now().Before(deadline) && idle < 3; {
		if parts, merging, err = ch.RollupParts(ctx); err != nil {
			return rep, err
		}
		if merging == 0 {
			idle++
		} else {
			idle = 0
		}
		time.Sleep(500 * time.Millisecond)
	}
	rep.RollupParts = parts
	fmt.Fprintf(o.Out, "  rollup: %d active parts, %d merges running\n", parts, merging)

	sel, err := audit.Select("month", "", "", now, policy.Location)
	if err != nil {
		return rep, err
	}
	discard := discardWriter{}
	time1 := func(f func() error) ([]time.Duration, error) {
		var ds []time.Duration
		for i := 0; i < auditRuns; i++ {
			t0 := time.Now()
			if err := f(); err != nil {
				return nil, err
			}
			ds = append(ds, time.Since(t0))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds, nil
	}
	sum, err := time1(func() error {
		s, err := audit.BuildSummary(ctx, ch, policy, gate.Initial(), time.Now())
		if err != nil {
			return err
		}
		return s.Text(discard)
	})
	if err != nil {
		return rep, err
	}
	costs, err := time1(func() error {
		c, err := audit.BuildCosts(ctx, ch, sel, "", 5)
		if err != nil {
			return err
		}
		return c.Text(discard)
	})
	if err != nil {
		return rep, err
	}
	rep.SummaryP50, rep.SummaryP90 = sum[auditRuns/2], sum[auditRuns*9/10]
	rep.CostsMonthP50, rep.CostsMonthP90 = costs[auditRuns/2], costs[auditRuns*9/10]
	return rep, nil
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// quiet drops the migration log lines of the bench's scratch databases.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// scratchDB opens a fresh database for one phase; drop removes it (unless
// --keep) and closes the client.
func scratchDB(ctx context.Context, o Options, name string) (*olap.Client, func(), error) {
	db := fmt.Sprintf("spendgate_%s_%d", name, time.Now().Unix())
	ch, err := olap.Open(ctx, olap.Options{Logger: quiet, Addr: o.ClickHouse.Addr, Database: db,
		User: o.ClickHouse.User, Password: o.ClickHouse.Password})
	if err != nil {
		return nil, nil, err
	}
	return ch, func() {
		if !o.Keep {
			_ = ch.DropDatabase(context.Background())
		}
		ch.Close()
	}, nil
}
