package olap

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/period"
)

// BucketSize is the rollup granularity (schemas/clickhouse/0002_cost_rollup_15m.sql).
const BucketSize = 15 * time.Minute

// ErrUnalignedRange is returned for a range whose ends are not on 15-minute
// boundaries: no time zone in use today produces one.
var ErrUnalignedRange = errors.New("range does not start and end on 15-minute boundaries")

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

func (f Filter) where() (string, []any) {
	s, args := "", []any{}
	if f.Service != "" {
		s += " AND service = ?"
		args = append(args, f.Service)
	}
	if f.Operation != "" {
		s += " AND operation = ?"
		args = append(args, f.Operation)
	}
	return s, args
}

// rollup builds a query over the rollup table for r; every user value is a
// bound parameter.
func rollup(r period.Range, f Filter, cols, tail string) (string, []any, error) {
	if r.Start.Unix()%int64(BucketSize/time.Second) != 0 || r.End.Unix()%int64(BucketSize/time.Second) != 0 {
		return "", nil, fmt.Errorf("%s: %w", r, ErrUnalignedRange)
	}
	where, fargs := f.where()
	q := "SELECT " + cols + " FROM {database}.cost_rollup_15m WHERE bucket >= toDateTime(?) AND bucket < toDateTime(?)" + where + " " + tail
	return q, append([]any{r.Start.Unix(), r.End.Unix()}, fargs...), nil
}

const sums = "sum(cost_usd), sum(events), sum(units)"

// Total is the spend over r.
func (c *Client) Total(ctx context.Context, r period.Range, f Filter) (Spend, error) {
	q, args, err := rollup(r, f, sums, "")
	if err != nil {
		return Spend{}, err
	}
	var s Spend
	if err := c.conn.QueryRow(ctx, c.sql(q), args...).Scan(&s.CostUSD, &s.Events, &s.Units); err != nil {
		return Spend{}, fmt.Errorf("total spend %s: %w", r, c.wrap(err))
	}
	return s, nil
}

// ByService is the spend over r per service, most expensive first.
func (c *Client) ByService(ctx context.Context, r period.Range, f Filter) ([]ServiceSpend, error) {
	q, args, err := rollup(r, f, "service, "+sums, "GROUP BY service ORDER BY sum(cost_usd) DESC, service")
	if err != nil {
		return nil, err
	}
	rows, err := c.conn.Query(ctx, c.sql(q), args...)
	if err != nil {
		return nil, fmt.Errorf("spend by service %s: %w", r, c.wrap(err))
	}
	defer rows.Close()
	var out []ServiceSpend
	for rows.Next() {
		var s ServiceSpend
		if err := rows.Scan(&s.Service, &s.CostUSD, &s.Events, &s.Units); err != nil {
			return nil, fmt.Errorf("spend by service: %w", c.wrap(err))
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ByOperation is the spend over r per service and operation, by service and
// then most expensive operation first.
func (c *Client) ByOperation(ctx context.Context, r period.Range, f Filter) ([]OperationSpend, error) {
	q, args, err := rollup(r, f, "service, operation, "+sums,
		"GROUP BY service, operation ORDER BY service, sum(cost_usd) DESC, operation")
	if err != nil {
		return nil, err
	}
	rows, err := c.conn.Query(ctx, c.sql(q), args...)
	if err != nil {
		return nil, fmt.Errorf("spend by operation %s: %w", r, c.wrap(err))
	}
	defer rows.Close()
	var out []OperationSpend
	for rows.Next() {
		var s OperationSpend
		if err := rows.Scan(&s.Service, &s.Operation, &s.CostUSD, &s.Events, &s.Units); err != nil {
			return nil, fmt.Errorf("spend by operation: %w", c.wrap(err))
		}
		out = append(out, s)
	}
	return out, rows.Err()
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
