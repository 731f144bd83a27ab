// Package audit builds and renders what operators ask `audit` for: the
// budget summary, cost breakdowns, gate status and history, and exports, in
// the layout of the tool it replaces (text) and as stable JSON and CSV. It
// reads the rollups through internal/olap and the gate through internal/gate.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/gate"
	"github.com/spendgate/spendgate/internal/olap"
	"github.com/spendgate/spendgate/internal/period"
)

// Money is an exact amount that encodes in JSON as a number written out in
// full ("12.75", never 1.275e1), so scripts keep the seed's numeric keys and
// nothing is rounded on the way.
type Money decimal.Decimal

// MarshalJSON writes the exact decimal as a JSON number.
func (m Money) MarshalJSON() ([]byte, error) { return []byte(decimal.Decimal(m).String()), nil }

// Dollars is the text form: $ and two decimals.
func Dollars(d decimal.Decimal) string { return "$" + d.StringFixed(2) }

// Percent is part/whole × 100 with one decimal, for text.
func Percent(part, whole decimal.Decimal) string {
	if whole.IsZero() {
		return "0.0"
	}
	return part.Mul(decimal.NewFromInt(100)).DivRound(whole, 1).StringFixed(1)
}

// percentNumber is part/whole × 100 with two decimals, for JSON.
func percentNumber(part, whole decimal.Decimal) json.Number {
	if whole.IsZero() {
		return "0"
	}
	return json.Number(part.Mul(decimal.NewFromInt(100)).DivRound(whole, 2).String())
}

// Reader is what the reports read: olap.Client's rollup queries.
type Reader interface {
	gate.SpendReader
	ByService(ctx context.Context, r period.Range, f olap.Filter) ([]olap.ServiceSpend, error)
	ByOperation(ctx context.Context, r period.Range, f olap.Filter) ([]olap.OperationSpend, error)
}

var _ Reader = (*olap.Client)(nil)

// Selection is the period a report covers, from --period or --from/--to.
type Selection struct {
	Range period.Range
	Label string // "Daily", "Weekly", "Monthly" or "Custom"
	Name  string // "day", "week", "month" or "custom"
}

// Select resolves the flags: --from and --to (dates in loc, both inclusive)
// win over --period; an unknown period, a bad date, a lone --to or a --from
// after --to is an error saying why.
func Select(periodName, from, to string, now time.Time, loc *time.Location) (Selection, error) {
	if from != "" || to != "" {
		if from == "" {
			return Selection{}, fmt.Errorf("--to needs --from")
		}
		if to == "" {
			to = now.In(loc).Format(period.DateLayout)
		}
		r, err := period.Dates(from, to, loc)
		if err != nil {
			return Selection{}, err
		}
		return Selection{Range: r, Label: "Custom", Name: "custom"}, nil
	}
	k, err := period.ParseKind(periodName)
	if err != nil {
		return Selection{}, err
	}
	r, err := period.Containing(k, now, loc)
	if err != nil {
		return Selection{}, err
	}
	label := map[period.Kind]string{period.Day: "Daily", period.Week: "Weekly", period.Month: "Monthly"}[k]
	return Selection{Range: r, Label: label, Name: string(k)}, nil
}
