package audit

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/olap"
)

// Costs is `audit costs`: spend by service, then operations per service.
type Costs struct {
	Period    string         `json:"period"`
	StartDate string         `json:"start_date"`
	EndDate   string         `json:"end_date"`
	Timezone  string         `json:"timezone"`
	Service   string         `json:"service,omitempty"` // the --service filter
	TotalCost Money          `json:"total_cost"`
	Services  []ServiceCosts `json:"services"`

	label string
	total decimal.Decimal
	top   int
}

// ServiceCosts is one service's spend and its operations, most expensive first.
type ServiceCosts struct {
	Service    string           `json:"service"`
	Cost       Money            `json:"cost"`
	Events     uint64           `json:"events"`
	Units      uint64           `json:"units"`
	Operations []OperationCosts `json:"operations"`

	cost decimal.Decimal
}

// OperationCosts is one operation's spend.
type OperationCosts struct {
	Operation string `json:"operation"`
	Cost      Money  `json:"cost"`
	Events    uint64 `json:"events"`
	Units     uint64 `json:"units"`

	cost decimal.Decimal
}

// BuildCosts reads the breakdown for sel from the rollups: one query, by
// service and operation; the per-service totals are their sums.
func BuildCosts(ctx context.Context, r Reader, sel Selection, service string, top int) (Costs, error) {
	ops, err := r.ByOperation(ctx, sel.Range, olap.Filter{Service: service})
	if err != nil {
		return Costs{}, err
	}
	c := Costs{Period: sel.Name, StartDate: sel.Range.StartDate(), EndDate: sel.Range.EndDate(),
		Timezone: sel.Range.Start.Location().String(), Service: service, label: sel.Label, top: top, Services: []ServiceCosts{}}
	idx := map[string]int{}
	for _, o := range ops {
		i, ok := idx[o.Service]
		if !ok {
			i = len(c.Services)
			idx[o.Service] = i
			c.Services = append(c.Services, ServiceCosts{Service: o.Service})
		}
		s := &c.Services[i]
		s.cost = s.cost.Add(o.CostUSD)
		s.Events += o.Events
		s.Units += o.Units
		s.Operations = append(s.Operations, OperationCosts{Operation: o.Operation, Cost: Money(o.CostUSD), Events: o.Events, Units: o.Units, cost: o.CostUSD})
		c.total = c.total.Add(o.CostUSD)
	}
	for i := range c.Services {
		c.Services[i].Cost = Money(c.Services[i].cost)
	}
	// Most expensive service first, as the seed printed them.
	sortServices(c.Services)
	c.TotalCost = Money(c.total)
	return c, nil
}

func sortServices(s []ServiceCosts) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && less(s[j], s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func less(a, b ServiceCosts) bool {
	if c := a.cost.Cmp(b.cost); c != 0 {
		return c > 0
	}
	return a.Service < b.Service
}

func (c Costs) title() string {
	if c.Period == "custom" {
		return fmt.Sprintf("Cost Breakdown by Service (%s to %s)", c.StartDate, c.EndDate)
	}
	return c.label + " Cost Breakdown by Service"
}

func (c Costs) opsTitle() string {
	if c.Period == "custom" {
		return fmt.Sprintf("Top Operations by Cost (%s to %s)", c.StartDate, c.EndDate)
	}
	return c.label + " Top Operations by Cost"
}

// Text writes the seed's layout: the service table with its total, then the
// top operations of each service.
func (c Costs) Text(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "=== %s ===\n\n", c.title())
	fmt.Fprintf(&b, "%-20s %s\n", "Service", "Amount")
	b.WriteString(strings.Repeat("-", 35) + "\n")
	for _, s := range c.Services {
		fmt.Fprintf(&b, "%-20s %s\n", s.Service, Dollars(s.cost))
	}
	b.WriteString(strings.Repeat("-", 35) + "\n")
	fmt.Fprintf(&b, "%-20s%s\n", "Total", Dollars(c.total))
	fmt.Fprintf(&b, "\n=== %s ===\n", c.opsTitle())
	for _, s := range c.Services {
		fmt.Fprintf(&b, "\n%s:\n", s.Service)
		for i, o := range s.Operations {
			if c.top > 0 && i == c.top {
				fmt.Fprintf(&b, "  (%d more)\n", len(s.Operations)-c.top)
				break
			}
			fmt.Fprintf(&b, "  %s: %s\n", o.Operation, Dollars(o.cost))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// CSV writes one row per service and operation, costs exact.
func (c Costs) CSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"period", "start_date", "end_date", "service", "operation", "cost_usd", "events", "units"})
	for _, s := range c.Services {
		for _, o := range s.Operations {
			_ = cw.Write([]string{c.Period, c.StartDate, c.EndDate, s.Service, o.Operation, o.cost.String(),
				strconv.FormatUint(o.Events, 10), strconv.FormatUint(o.Units, 10)})
		}
	}
	cw.Flush()
	return cw.Error()
}

// Export is `audit export`: the seed's report keys.
type Export struct {
	Period             string                      `json:"period"`
	StartDate          string                      `json:"start_date"`
	EndDate            string                      `json:"end_date"`
	GeneratedAt        time.Time                   `json:"generated_at"`
	Timezone           string                      `json:"timezone"`
	TotalCost          Money                       `json:"total_cost"`
	ServiceBreakdown   map[string]Money            `json:"service_breakdown"`
	OperationBreakdown map[string]map[string]Money `json:"operation_breakdown"`
}

// Export turns the breakdown into the export report.
func (c Costs) Export(now time.Time) Export {
	e := Export{Period: c.Period, StartDate: c.StartDate, EndDate: c.EndDate, GeneratedAt: now.UTC(),
		Timezone: c.Timezone, TotalCost: c.TotalCost,
		ServiceBreakdown: map[string]Money{}, OperationBreakdown: map[string]map[string]Money{}}
	for _, s := range c.Services {
		e.ServiceBreakdown[s.Service] = s.Cost
		ops := map[string]Money{}
		for _, o := range s.Operations {
			ops[o.Operation] = o.Cost
		}
		e.OperationBreakdown[s.Service] = ops
	}
	return e
}

// TotalText is the total as text, $ and two decimals.
func (c Costs) TotalText() string { return Dollars(c.total) }
