package olap

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/period"
)

// BucketSize is the rollup granularity (schemas/clickhouse/0002_cost_rollup_15m.sql).
const BucketSize = 15 * time.Minute

// Filter narrows a query to one service and/or operation; empty means all.
type Filter struct {
	Service   string
	Operation string
}

// Spend is a total over a range.
type Spend struct {
	CostUSD decimal.Decimal
	Events  uint64
	Units   uint64
}

func (s *Spend) add(o Spend) {
	s.CostUSD = s.CostUSD.Add(o.CostUSD)
	s.Events += o.Events
	s.Units += o.Units
}

// ServiceSpend is one service's total.
type ServiceSpend struct {
	Service string
	Spend
}

// OperationSpend is one service and operation's total.
type OperationSpend struct {
	Service   string
	Operation string
	Spend
}

// parts splits r into the whole 15-minute buckets inside it, read from the
// rollup, and the partial buckets at its ends (none for a calendar period:
// every zone's midnight is on a bucket boundary), read from cost_events. A
// partial end covers less than 15 minutes of events, so no query ever scans
// more raw rows than 30 minutes' worth, whatever the range.
func parts(r period.Range) (inner period.Range, edges []period.Range) {
	start := r.Start.Truncate(time.Second)
	end := r.End.Truncate(time.Second)
	if !end.Equal(r.End) {
		end = end.Add(time.Second) // [.., 12:00:00.5) holds ts 12:00:00
	}
	a := start.Truncate(BucketSize)
	if a.Before(start) {
		a = a.Add(BucketSize)
	}
	b := end.Truncate(BucketSize)
	if !a.Before(b) { // shorter than a bucket: all raw
		return period.Range{}, []period.Range{{Start: start, End: end}}
	}
	if start.Before(a) {
		edges = append(edges, period.Range{Start: start, End: a})
	}
	if b.Before(end) {
		edges = append(edges, period.Range{Start: b, End: end})
	}
	return period.Range{Start: a, End: b}, edges
}

// query sums cost, events and units over r grouped by keys (none, service,
// or service and operation), and calls row for each group. Every user value
// is a bound parameter.
func (c *Client) query(ctx context.Context, r period.Range, f Filter, keys []string, row func(keys []string, s Spend)) error {
	inner, edges := parts(r)
	var sel []string
	var args []any
	where := ""
	var fargs []any
	if f.Service != "" {
		where += " AND service = ?"
		fargs = append(fargs, f.Service)
	}
	if f.Operation != "" {
		where += " AND operation = ?"
		fargs = append(fargs, f.Operation)
	}
	cols := strings.Join(append(append([]string{}, keys...), ""), ", ")
	if !inner.Start.IsZero() {
		sel = append(sel, "SELECT "+cols+"toDecimal128(cost_usd, 9) AS c, events AS e, units AS u FROM {database}.cost_rollup_15m"+
			" WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?)"+where)
		args = append(append(args, inner.Start.Unix(), inner.End.Unix()), fargs...)
	}
	for _, e := range edges {
		sel = append(sel, "SELECT "+cols+"toDecimal128(cost_usd, 9) AS c, toUInt64(1) AS e, units AS u FROM {database}.cost_events"+
			" WHERE ts >= toDateTime(?) AND ts < toDateTime(?)"+where)
		args = append(append(args, e.Start.Unix(), e.End.Unix()), fargs...)
	}
	q := "SELECT " + cols + "sum(c), sum(e), sum(u) FROM (" + strings.Join(sel, " UNION ALL ") + ")"
	if len(keys) > 0 {
		q += " GROUP BY " + strings.Join(keys, ", ")
	}
	rows, err := c.conn.Query(ctx, c.sql(q), args...)
	if err != nil {
		return fmt.Errorf("spend %s: %w", r, c.wrap(err))
	}
	defer rows.Close()
	for rows.Next() {
		k := make([]string, len(keys))
		var s Spend
		dest := make([]any, 0, len(keys)+3)
		for i := range k {
			dest = append(dest, &k[i])
		}
		dest = append(dest, &s.CostUSD, &s.Events, &s.Units)
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("spend %s: %w", r, c.wrap(err))
		}
		row(k, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("spend %s: %w", r, c.wrap(err))
	}
	return nil
}

// Total is the spend over r.
func (c *Client) Total(ctx context.Context, r period.Range, f Filter) (Spend, error) {
	var total Spend
	err := c.query(ctx, r, f, nil, func(_ []string, s Spend) { total.add(s) })
	return total, err
}

// ByService is the spend over r per service, most expensive first.
func (c *Client) ByService(ctx context.Context, r period.Range, f Filter) ([]ServiceSpend, error) {
	var out []ServiceSpend
	err := c.query(ctx, r, f, []string{"service"}, func(k []string, s Spend) {
		out = append(out, ServiceSpend{Service: k[0], Spend: s})
	})
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].CostUSD.Cmp(out[j].CostUSD); c != 0 {
			return c > 0
		}
		return out[i].Service < out[j].Service
	})
	return out, err
}

// ByOperation is the spend over r per service and operation: services in
// name order, then the most expensive operation first.
func (c *Client) ByOperation(ctx context.Context, r period.Range, f Filter) ([]OperationSpend, error) {
	var out []OperationSpend
	err := c.query(ctx, r, f, []string{"service", "operation"}, func(k []string, s Spend) {
		out = append(out, OperationSpend{Service: k[0], Operation: k[1], Spend: s})
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		if c := out[i].CostUSD.Cmp(out[j].CostUSD); c != 0 {
			return c > 0
		}
		return out[i].Operation < out[j].Operation
	})
	return out, err
}

// RawTotal sums cost_events itself over r: a full scan, for tests and for
// checking the rollups, never for budgets or reports.
func (c *Client) RawTotal(ctx context.Context, r period.Range) (Spend, error) {
	var s Spend
	err := c.conn.QueryRow(ctx, c.sql(`SELECT sum(cost_usd), count(), sum(units) FROM {database}.cost_events
		WHERE ts >= toDateTime(?) AND ts < toDateTime(?)`), r.Start.Unix(), r.End.Unix()).Scan(&s.CostUSD, &s.Events, &s.Units)
	if err != nil {
		return Spend{}, fmt.Errorf("raw total %s: %w", r, c.wrap(err))
	}
	return s, nil
}
