// Package gate is the scaling gate: budgets and thresholds evaluated from the
// stored aggregates after every ingest flush and on a short timer, a state
// machine with hysteresis and manual overrides, and gate-state events on
// costs.gate.scaling whose current value lives in the JetStream KV bucket
// spendgate_gate (key scaling). The KV revision is the arbiter: a transition
// is committed by a compare-and-set on it, so however many evaluators run,
// exactly one event is published per transition.
package gate

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/config"
	"github.com/spendgate/spendgate/internal/olap"
	"github.com/spendgate/spendgate/internal/period"
)

// Budget periods: calendar ones in the budgets' time zone, and sliding windows.
const (
	PeriodDay     = "day"
	PeriodWeek    = "week"
	PeriodMonth   = "month"
	Period24h     = "24h"
	Period30d     = "30d"
	BudgetDaily   = "daily"
	BudgetMonthly = "monthly"
)

// Budget is one limit over one period, optionally for one service/operation.
type Budget struct {
	Name   string
	Period string
	Limit  decimal.Decimal
	Filter olap.Filter
}

// Range is the budget's period at now.
func (b Budget) Range(now time.Time, loc *time.Location) period.Range {
	switch b.Period {
	case Period24h:
		return period.Range{Start: now.Add(-24 * time.Hour), End: now.Add(time.Nanosecond)}
	case Period30d:
		return period.Range{Start: now.Add(-30 * 24 * time.Hour), End: now.Add(time.Nanosecond)}
	}
	r, err := period.Containing(period.Kind(b.Period), now, loc)
	if err != nil { // config validation rules this out
		panic(err)
	}
	return r
}

// Sliding reports whether the period is a sliding window.
func (b Budget) Sliding() bool { return b.Period == Period24h || b.Period == Period30d }

// Policy is the budgets and thresholds the gate enforces.
type Policy struct {
	Budgets  []Budget
	Alert    decimal.Decimal
	Gate     decimal.Decimal
	Release  decimal.Decimal
	Location *time.Location
	Critical map[string][]string
}

// NewPolicy builds the policy from configuration.
func NewPolicy(c config.Config) (Policy, error) {
	loc, err := c.Budgets.Location()
	if err != nil {
		return Policy{}, err
	}
	day, month := PeriodDay, PeriodMonth
	if c.Budgets.Window == "sliding" {
		day, month = Period24h, Period30d
	}
	p := Policy{
		Budgets: []Budget{
			{Name: BudgetDaily, Period: day, Limit: c.Budgets.DailyUSD},
			{Name: BudgetMonthly, Period: month, Limit: c.Budgets.MonthlyUSD},
		},
		Alert: c.Budgets.AlertThreshold, Gate: c.Budgets.GateThreshold, Release: c.Budgets.ReleaseThreshold,
		Location: loc, Critical: c.Gate.CriticalOperations,
	}
	for _, s := range c.Budgets.Scoped {
		p.Budgets = append(p.Budgets, Budget{Name: s.Name, Period: s.Period, Limit: s.LimitUSD,
			Filter: olap.Filter{Service: s.Service, Operation: s.Operation}})
	}
	return p, nil
}

// BudgetStatus is a budget's spend at one moment.
type BudgetStatus struct {
	Name        string          `json:"name"`
	Period      string          `json:"period"`
	Service     string          `json:"service,omitempty"`
	Operation   string          `json:"operation,omitempty"`
	Start       time.Time       `json:"start"`
	End         time.Time       `json:"end"`
	SpendUSD    decimal.Decimal `json:"spend_usd"`
	LimitUSD    decimal.Decimal `json:"limit_usd"`
	Utilization decimal.Decimal `json:"utilization"` // spend / limit, 6 decimals (comparisons use exact products)
}

// AtLeast reports spend >= threshold × limit, exactly.
func (s BudgetStatus) AtLeast(threshold decimal.Decimal) bool {
	return s.SpendUSD.GreaterThanOrEqual(s.LimitUSD.Mul(threshold))
}

// Percent is the utilisation as a percentage with one decimal, for reasons.
func (s BudgetStatus) Percent() string {
	return s.SpendUSD.Mul(decimal.NewFromInt(100)).DivRound(s.LimitUSD, 1).StringFixed(1) + "%"
}

// SpendReader is the part of olap.Client the gate reads: the rollups.
type SpendReader interface {
	Total(ctx context.Context, r period.Range, f olap.Filter) (olap.Spend, error)
}

var _ SpendReader = (*olap.Client)(nil)

// Statuses measures every budget at now.
func (p Policy) Statuses(ctx context.Context, spend SpendReader, now time.Time) ([]BudgetStatus, error) {
	out := make([]BudgetStatus, 0, len(p.Budgets))
	for _, b := range p.Budgets {
		r := b.Range(now, p.Location)
		s, err := spend.Total(ctx, r, b.Filter)
		if err != nil {
			return nil, fmt.Errorf("budget %s: %w", b.Name, err)
		}
		out = append(out, BudgetStatus{
			Name: b.Name, Period: b.Period, Service: b.Filter.Service, Operation: b.Filter.Operation,
			Start: r.Start.UTC(), End: r.End.UTC(), SpendUSD: s.CostUSD, LimitUSD: b.Limit,
			Utilization: s.CostUSD.DivRound(b.Limit, 6),
		})
	}
	return out, nil
}

// NextBoundary is the first instant after now at which a calendar budget's
// period ends: the gate is re-evaluated then, not only when an event comes.
func (p Policy) NextBoundary(now time.Time) time.Time {
	var next time.Time
	for _, b := range p.Budgets {
		if b.Sliding() {
			continue
		}
		if end := b.Range(now, p.Location).End; next.IsZero() || end.Before(next) {
			next = end
		}
	}
	return next
}
