package gate

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spendgate/spendgate/internal/olap"
)

// BudgetGauges are the budget metrics of the contract, shared by the worker's
// /metrics and `audit export-prometheus`. Money is exact everywhere else;
// Prometheus samples are float64 by nature, so these are for graphs and
// alerts, never for accounting.
type BudgetGauges struct {
	Active       prometheus.Gauge
	AutoActive   prometheus.Gauge
	Manual       prometheus.Gauge
	Spend        *prometheus.GaugeVec
	Budget       *prometheus.GaugeVec
	Utilization  *prometheus.GaugeVec
	ScopedSpend  *prometheus.GaugeVec
	ScopedBudget *prometheus.GaugeVec
	ScopedUtil   *prometheus.GaugeVec
	ServiceSpend *prometheus.GaugeVec
}

// NewBudgetGauges registers the budget gauges on reg.
func NewBudgetGauges(reg prometheus.Registerer) *BudgetGauges {
	g := &BudgetGauges{
		Active: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "spendgate", Name: "gate_active",
			Help: "1 while the scaling gate is active (scaling paused), else 0."}),
		AutoActive: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "spendgate", Name: "gate_auto_active",
			Help: "1 when the automatic evaluation says active, even while a manual mode overrides it."}),
		Manual: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "spendgate", Name: "gate_manual",
			Help: "1 while a manual enable or disable holds the gate."}),
		Spend: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "spendgate", Name: "spend_usd",
			Help: "Spend in USD over the budget period (daily or monthly)."}, []string{"period"}),
		Budget: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "spendgate", Name: "budget_usd",
			Help: "Budget in USD for the period."}, []string{"period"}),
		Utilization: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "spendgate", Name: "budget_utilization_ratio",
			Help: "Spend divided by budget for the period."}, []string{"period"}),
		ScopedSpend: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "spendgate", Name: "scoped_spend_usd",
			Help: "Spend in USD counted against a scoped budget."}, []string{"budget"}),
		ScopedBudget: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "spendgate", Name: "scoped_budget_usd",
			Help: "A scoped budget's limit in USD."}, []string{"budget"}),
		ScopedUtil: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "spendgate", Name: "scoped_budget_utilization_ratio",
			Help: "A scoped budget's spend divided by its limit."}, []string{"budget"}),
		ServiceSpend: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "spendgate", Name: "service_spend_usd",
			Help: "Spend in USD per service over the budget period (daily or monthly)."}, []string{"period", "service"}),
	}
	reg.MustRegister(g.Active, g.AutoActive, g.Manual, g.Spend, g.Budget, g.Utilization,
		g.ScopedSpend, g.ScopedBudget, g.ScopedUtil, g.ServiceSpend)
	return g
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// SetState sets the gate gauges.
func (g *BudgetGauges) SetState(s State, autoState string) {
	g.Active.Set(b2f(s.Active()))
	g.AutoActive.Set(b2f(autoState == StateActive))
	g.Manual.Set(b2f(s.Mode == ModeEnabled || s.Mode == ModeDisabled))
}

// SetBudgets sets the budget gauges from statuses.
func (g *BudgetGauges) SetBudgets(st []BudgetStatus) {
	for _, b := range st {
		spend, limit, util := b.SpendUSD.InexactFloat64(), b.LimitUSD.InexactFloat64(), b.Utilization.InexactFloat64()
		switch b.Name {
		case BudgetDaily, BudgetMonthly:
			g.Spend.WithLabelValues(b.Name).Set(spend)
			g.Budget.WithLabelValues(b.Name).Set(limit)
			g.Utilization.WithLabelValues(b.Name).Set(util)
		default:
			g.ScopedSpend.WithLabelValues(b.Name).Set(spend)
			g.ScopedBudget.WithLabelValues(b.Name).Set(limit)
			g.ScopedUtil.WithLabelValues(b.Name).Set(util)
		}
	}
}

// SetServices sets spendgate_service_spend_usd for one period.
func (g *BudgetGauges) SetServices(periodName string, services []olap.ServiceSpend) {
	for _, s := range services {
		g.ServiceSpend.WithLabelValues(periodName, s.Service).Set(s.CostUSD.InexactFloat64())
	}
}

// Metrics is the evaluator's own: the budget gauges plus how it runs.
type Metrics struct {
	*BudgetGauges
	Transitions *prometheus.CounterVec
	Alerts      *prometheus.CounterVec
	Evaluations *prometheus.CounterVec
	EvalSeconds prometheus.Histogram
}

// NewMetrics registers the evaluator's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		BudgetGauges: NewBudgetGauges(reg),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "spendgate", Subsystem: "gate", Name: "transitions_total",
			Help: "Gate-state changes committed by this process, by new state and source."}, []string{"state", "source"}),
		Alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "spendgate", Subsystem: "gate", Name: "alerts_total",
			Help: "Budget alerts published on costs.gate.alert by this process, by level."}, []string{"level"}),
		Evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "spendgate", Subsystem: "gate", Name: "evaluations_total",
			Help: "Gate evaluations, by result (ok or error)."}, []string{"result"}),
		EvalSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "spendgate", Subsystem: "gate", Name: "evaluation_duration_seconds",
			Help: "Time to evaluate every budget and commit a transition.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 10)}),
	}
	for _, s := range []string{StateActive, StateInactive} {
		for _, src := range []string{SourceAuto, SourceManual} {
			m.Transitions.WithLabelValues(s, src)
		}
	}
	m.Alerts.WithLabelValues(LevelWarning)
	m.Alerts.WithLabelValues(LevelExhausted)
	m.Evaluations.WithLabelValues("ok")
	m.Evaluations.WithLabelValues("error")
	reg.MustRegister(m.Transitions, m.Alerts, m.Evaluations, m.EvalSeconds)
	return m
}

func (m *Metrics) observeEvaluation(d time.Duration, err error) {
	m.EvalSeconds.Observe(d.Seconds())
	if err != nil {
		m.Evaluations.WithLabelValues("error").Inc()
		return
	}
	m.Evaluations.WithLabelValues("ok").Inc()
}

func (m *Metrics) observe(r Result) {
	m.SetState(r.State, r.Verdict.State)
	m.SetBudgets(r.Statuses)
}
