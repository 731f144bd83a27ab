package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/gate"
)

// Summary is `audit summary`: the seed's keys first, then more.
type Summary struct {
	DailyBudget       Money       `json:"daily_budget"`
	DailyCost         Money       `json:"daily_cost"`
	DailyPercentage   json.Number `json:"daily_percentage"`
	MonthlyBudget     Money       `json:"monthly_budget"`
	MonthlyCost       Money       `json:"monthly_cost"`
	MonthlyPercentage json.Number `json:"monthly_percentage"`
	DailyAlert        bool        `json:"daily_alert"`
	MonthlyAlert      bool        `json:"monthly_alert"`
	GateActive        bool        `json:"scaling_gate_active"`
	GateReason        string      `json:"scaling_gate_reason"`
	GateMode          string      `json:"scaling_gate_mode"`
	GateSince         *time.Time  `json:"scaling_gate_since,omitempty"`
	AutoState         string      `json:"scaling_gate_auto_state"` // what the automatic evaluation says now
	AlertThreshold    json.Number `json:"alert_threshold"`
	GateThreshold     json.Number `json:"gate_threshold"`
	Timezone          string      `json:"timezone"`
	Window            string      `json:"window"`
	GeneratedAt       time.Time   `json:"generated_at"`
	Budgets           []budgetRow `json:"budgets"`

	statuses []gate.BudgetStatus
	alertTh  decimal.Decimal
}

type budgetRow struct {
	Name       string      `json:"name"`
	Period     string      `json:"period"`
	Service    string      `json:"service,omitempty"`
	Operation  string      `json:"operation,omitempty"`
	Start      time.Time   `json:"start"`
	End        time.Time   `json:"end"`
	Spend      Money       `json:"spend"`
	Budget     Money       `json:"budget"`
	Percentage json.Number `json:"percentage"`
	Alert      bool        `json:"alert"`
}

// BuildSummary measures every budget now and reads the gate's state.
func BuildSummary(ctx context.Context, r Reader, p gate.Policy, st gate.State, now time.Time) (Summary, error) {
	statuses, err := p.Statuses(ctx, r, now)
	if err != nil {
		return Summary{}, err
	}
	s := Summary{
		GateActive: st.Active(), GateReason: st.Reason, GateMode: st.Mode,
		AutoState:      p.Decide(st.AutoState, statuses).State,
		AlertThreshold: json.Number(p.Alert.String()), GateThreshold: json.Number(p.Gate.String()),
		Timezone: p.Location.String(), GeneratedAt: now.UTC(), statuses: statuses, alertTh: p.Alert,
	}
	if st.Seq > 0 {
		at := st.At
		s.GateSince = &at
	}
	s.Window = "calendar"
	for _, b := range statuses {
		row := budgetRow{Name: b.Name, Period: b.Period, Service: b.Service, Operation: b.Operation,
			Start: b.Start, End: b.End, Spend: Money(b.SpendUSD), Budget: Money(b.LimitUSD),
			Percentage: percentNumber(b.SpendUSD, b.LimitUSD), Alert: b.AtLeast(p.Alert)}
		s.Budgets = append(s.Budgets, row)
		switch b.Name {
		case gate.BudgetDaily:
			s.DailyBudget, s.DailyCost, s.DailyPercentage, s.DailyAlert = row.Budget, row.Spend, row.Percentage, row.Alert
			if b.Period == gate.Period24h {
				s.Window = "sliding"
			}
		case gate.BudgetMonthly:
			s.MonthlyBudget, s.MonthlyCost, s.MonthlyPercentage, s.MonthlyAlert = row.Budget, row.Spend, row.Percentage, row.Alert
		}
	}
	return s, nil
}

// Text writes the seed's layout, then the gate and any scoped budgets.
func (s Summary) Text(w io.Writer) error {
	var b strings.Builder
	b.WriteString("=== Budget Summary ===\n\n")
	for _, st := range s.statuses {
		if st.Name != gate.BudgetDaily && st.Name != gate.BudgetMonthly {
			continue
		}
		title := "Daily"
		if st.Name == gate.BudgetMonthly {
			title = "Monthly"
		}
		alert := ""
		if st.AtLeast(s.alertTh) {
			alert = "  ALERT"
		}
		fmt.Fprintf(&b, "%s Budget: %s\n", title, Dollars(st.LimitUSD))
		fmt.Fprintf(&b, "%s Spend:  %s (%s%% of budget)%s\n\n", title, Dollars(st.SpendUSD), Percent(st.SpendUSD, st.LimitUSD), alert)
	}
	var scoped []gate.BudgetStatus
	for _, st := range s.statuses {
		if st.Name != gate.BudgetDaily && st.Name != gate.BudgetMonthly {
			scoped = append(scoped, st)
		}
	}
	if len(scoped) > 0 {
		b.WriteString("Scoped Budgets:\n")
		for _, st := range scoped {
			scope := strings.Trim(st.Service+"/"+st.Operation, "/")
			fmt.Fprintf(&b, "  %s (%s, %s): %s of %s (%s%%)\n", st.Name, scope, st.Period, Dollars(st.SpendUSD), Dollars(st.LimitUSD), Percent(st.SpendUSD, st.LimitUSD))
		}
		b.WriteString("\n")
	}
	state := "INACTIVE"
	if s.GateActive {
		state = "ACTIVE"
	}
	mode := ""
	if s.GateMode != "" && s.GateMode != gate.ModeAuto {
		mode = " (manual: " + s.GateMode + ")"
	}
	fmt.Fprintf(&b, "Scaling Gate: %s%s - %s\n", state, mode, s.GateReason)
	_, err := io.WriteString(w, b.String())
	return err
}
