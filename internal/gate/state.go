package gate

import (
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// The gate's names, states, sources and modes (schemas/gate_event.schema.json).
const (
	GateScaling = "scaling"

	StateActive   = "active"
	StateInactive = "inactive"

	SourceAuto   = "auto"   // the evaluator
	SourceManual = "manual" // a person, through `audit gate`

	ModeAuto     = "auto"     // the evaluator decides
	ModeEnabled  = "enabled"  // forced active until disabled or set back to auto
	ModeDisabled = "disabled" // forced inactive until set back to auto or the day ends
)

// State is a gate-state event, and the current value kept in KV.
type State struct {
	Gate   string    `json:"gate"`
	State  string    `json:"state"`
	Source string    `json:"source"`
	Mode   string    `json:"mode"`
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	// ModeUntil is when a manual disable lapses back to auto.
	ModeUntil *time.Time `json:"mode_until,omitempty"`
	// Budget names the budget that tripped the gate, if any.
	Budget           string          `json:"budget,omitempty"`
	DailySpendUSD    decimal.Decimal `json:"daily_spend_usd"`
	DailyBudgetUSD   decimal.Decimal `json:"daily_budget_usd"`
	MonthlySpendUSD  decimal.Decimal `json:"monthly_spend_usd"`
	MonthlyBudgetUSD decimal.Decimal `json:"monthly_budget_usd"`
	Budgets          []BudgetStatus  `json:"budgets"`
	// AutoState is what the automatic evaluation says, even under a manual mode.
	AutoState string `json:"auto_state"`
	Previous  string `json:"previous_state,omitempty"`
	Seq       uint64 `json:"seq"`
}

// Active reports whether the gate pauses scaling.
func (s State) Active() bool { return s.State == StateActive }

// Initial is the state before any event: inactive, automatic.
func Initial() State {
	return State{Gate: GateScaling, State: StateInactive, Source: SourceAuto, Mode: ModeAuto,
		AutoState: StateInactive, Reason: "no evaluation yet", Budgets: []BudgetStatus{}}
}

// withStatuses copies the budgets' spends into the event's fields.
func (s *State) withStatuses(st []BudgetStatus) {
	s.Budgets = st
	for _, b := range st {
		switch b.Name {
		case BudgetDaily:
			s.DailySpendUSD, s.DailyBudgetUSD = b.SpendUSD, b.LimitUSD
		case BudgetMonthly:
			s.MonthlySpendUSD, s.MonthlyBudgetUSD = b.SpendUSD, b.LimitUSD
		}
	}
}

// Verdict is what the automatic evaluation says, with hysteresis: an active
// gate stays active until every budget is below release; an inactive one
// activates when any budget reaches gate.
type Verdict struct {
	State  string
	Budget string // the tripping budget (highest utilisation), if any
	Reason string
}

// Decide is the automatic verdict given the current automatic state.
func (p Policy) Decide(autoState string, st []BudgetStatus) Verdict {
	var top *BudgetStatus
	for i := range st {
		if st[i].AtLeast(p.Gate) && (top == nil || st[i].Utilization.GreaterThan(top.Utilization)) {
			top = &st[i]
		}
	}
	if top != nil {
		return Verdict{State: StateActive, Budget: top.Name,
			Reason: fmt.Sprintf("%s budget at %s of $%s (gate threshold %s)", top.Name, top.Percent(), top.LimitUSD.StringFixed(2), pct(p.Gate))}
	}
	if autoState == StateActive {
		var held []string
		for i := range st {
			if st[i].AtLeast(p.Release) {
				held = append(held, st[i].Name+" "+st[i].Percent())
			}
		}
		if len(held) > 0 {
			return Verdict{State: StateActive, Budget: "",
				Reason: fmt.Sprintf("held until below the %s release threshold: %s", pct(p.Release), strings.Join(held, ", "))}
		}
	}
	parts := make([]string, 0, len(st))
	for _, b := range st {
		parts = append(parts, b.Name+" "+b.Percent())
	}
	return Verdict{State: StateInactive,
		Reason: fmt.Sprintf("below threshold: %s", strings.Join(parts, ", "))}
}

func pct(d decimal.Decimal) string {
	return d.Mul(decimal.NewFromInt(100)).String() + "%"
}

// Allowed answers whether service/operation may scale now: always while the
// gate is inactive, and while it is active only for critical operations.
func Allowed(s State, critical map[string][]string, service, operation string) (bool, string) {
	if !s.Active() {
		return true, "gate inactive"
	}
	for _, op := range critical[service] {
		if op == "*" || op == operation {
			return true, fmt.Sprintf("gate active, but %s/%s is a critical operation", service, operation)
		}
	}
	return false, "gate active: " + s.Reason
}
