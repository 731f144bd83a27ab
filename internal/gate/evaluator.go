package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/olap"
	"github.com/spendgate/spendgate/internal/period"
)

// Evaluator re-evaluates the gate from the stored aggregates and commits
// transitions. Any number may run (one per ingest process): the KV
// compare-and-set lets exactly one commit each transition.
type Evaluator struct {
	policy   Policy
	spend    SpendReader
	store    *Store
	metrics  *Metrics
	log      *slog.Logger
	now      func() time.Time
	by       string
	interval time.Duration
	trigger  chan struct{}
	// unpublished is set when a commit landed in KV but its publish failed.
	unpublished bool
	lastWould   string
}

// EvaluatorOptions tunes an Evaluator.
type EvaluatorOptions struct {
	Interval time.Duration    // timer besides triggers; default 1s
	Now      func() time.Time // the clock; default time.Now
	By       string           // who automatic changes are by; default spendgate-ingest@<host>
}

// NewEvaluator builds an evaluator; metrics may be nil.
func NewEvaluator(p Policy, spend SpendReader, store *Store, m *Metrics, log *slog.Logger, o EvaluatorOptions) *Evaluator {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.By == "" {
		host, _ := os.Hostname()
		o.By = "spendgate-ingest@" + host
	}
	return &Evaluator{policy: p, spend: spend, store: store, metrics: m, log: log.With("component", "gate"),
		now: o.Now, by: o.By, interval: o.Interval, trigger: make(chan struct{}, 1)}
}

// Trigger asks for an evaluation soon (after an ingest flush); it never blocks
// and coalesces.
func (e *Evaluator) Trigger() {
	select {
	case e.trigger <- struct{}{}:
	default:
	}
}

// Result is one evaluation.
type Result struct {
	State      State          // the gate after this evaluation
	Statuses   []BudgetStatus // every budget now
	Verdict    Verdict        // what the automatic evaluation says
	Changed    bool           // this evaluator committed a transition
	AlertsSent int
}

// Evaluate measures every budget, applies the state machine and commits a
// transition if there is one. A manual mode is never replaced: the verdict
// is still computed and reported (metric and result) for the operator.
func (e *Evaluator) Evaluate(ctx context.Context) (Result, error) {
	start := time.Now()
	res, err := e.evaluate(ctx)
	if e.metrics != nil {
		e.metrics.observeEvaluation(time.Since(start), err)
		if err == nil {
			e.metrics.observe(res)
		}
	}
	return res, err
}

// ServiceReader is the breakdown the per-service gauges need.
type ServiceReader interface {
	ByService(ctx context.Context, r period.Range, f olap.Filter) ([]olap.ServiceSpend, error)
}

// refreshServices updates spendgate_service_spend_usd for today and this
// month. It runs on its own 10s timer: a breakdown is for dashboards and
// must not delay the gate's reaction.
func (e *Evaluator) refreshServices(ctx context.Context) {
	sr, ok := e.spend.(ServiceReader)
	if !ok || e.metrics == nil {
		return
	}
	now := e.now()
	for _, b := range e.policy.Budgets {
		if b.Name != BudgetDaily && b.Name != BudgetMonthly {
			continue
		}
		svcs, err := sr.ByService(ctx, b.Range(now, e.policy.Location), olap.Filter{})
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("service spend", "err", err)
			}
			return
		}
		e.metrics.SetServices(b.Name, svcs)
	}
}

func (e *Evaluator) evaluate(ctx context.Context) (Result, error) {
	if e.unpublished {
		if err := e.store.Reconcile(ctx); err != nil {
			return Result{}, err
		}
		e.unpublished = false
	}
	for attempt := 0; ; attempt++ {
		now := e.now()
		st, err := e.policy.Statuses(ctx, e.spend, now)
		if err != nil {
			return Result{}, err
		}
		cur, rev, err := e.store.Load(ctx)
		if err != nil {
			return Result{}, err
		}
		res := Result{Statuses: st, State: cur}
		res.Verdict = e.policy.Decide(cur.AutoState, st)
		res.AlertsSent, err = e.alerts(ctx, st, now)
		if err != nil {
			e.log.Warn("sending alerts", "err", err)
		}
		next, ok := e.next(cur, res.Verdict, st, now)
		if !ok {
			return res, nil
		}
		err = e.store.Commit(ctx, next, rev)
		if errors.Is(err, ErrConflict) && attempt < 5 {
			continue // another evaluator or an operator got there first: look again
		}
		if err != nil {
			if !errors.Is(err, ErrConflict) {
				e.unpublished = true // KV may hold it; Reconcile publishes it next time
			}
			return res, err
		}
		res.State, res.Changed = next, true
		if e.metrics != nil {
			e.metrics.Transitions.WithLabelValues(next.State, next.Source).Inc()
		}
		e.log.Info("gate transition", "state", next.State, "source", next.Source, "mode", next.Mode,
			"reason", next.Reason, "seq", next.Seq)
		return res, nil
	}
}

// next applies the state machine; ok is false when nothing changes. Under a
// manual mode nothing is written: the verdict is only reported (metric,
// log, audit gate status) until the mode ends.
func (e *Evaluator) next(cur State, v Verdict, st []BudgetStatus, now time.Time) (State, bool) {
	n := cur
	n.Gate, n.Source, n.By, n.At, n.Previous = GateScaling, SourceAuto, e.by, now.UTC(), cur.State
	n.withStatuses(st)
	n.Seq = cur.Seq + 1
	switch cur.Mode {
	case ModeEnabled:
		e.reportManual(cur, v)
		return cur, false
	case ModeDisabled:
		if cur.ModeUntil == nil || now.Before(*cur.ModeUntil) {
			e.reportManual(cur, v)
			return cur, false
		}
		// The disable lapsed at the end of its day: back to automatic.
		n.Mode, n.ModeUntil, n.State, n.AutoState, n.Budget = ModeAuto, nil, v.State, v.State, v.Budget
		n.Reason = "manual disable expired at the end of its day; back to auto: " + v.Reason
		return n, true
	}
	if cur.Seq > 0 && cur.State == v.State {
		return cur, false
	}
	// A transition, or the very first evaluation, which writes the initial
	// state so that a subscriber starting later reads it from KV at once.
	n.Mode, n.State, n.AutoState, n.Budget, n.Reason = ModeAuto, v.State, v.State, v.Budget, v.Reason
	return n, true
}

// reportManual logs, once per change, what the automatic evaluation would do
// while a manual mode holds.
func (e *Evaluator) reportManual(cur State, v Verdict) {
	if e.lastWould == v.State {
		return
	}
	e.lastWould = v.State
	e.log.Info("manual gate mode kept", "mode", cur.Mode, "state", cur.State, "by", cur.By,
		"automatic_would_be", v.State, "automatic_reason", v.Reason)
}

// Levels of alerts.
const (
	LevelWarning   = "warning"
	LevelExhausted = "exhausted"
)

// alerts sends each budget's warning (alert_threshold) and exhausted (100%)
// alert once per period; for a sliding window the period is the calendar day.
func (e *Evaluator) alerts(ctx context.Context, st []BudgetStatus, now time.Time) (int, error) {
	sent := 0
	var errs []error
	for i, b := range st {
		for _, lv := range []struct {
			level string
			th    decimal.Decimal
		}{{LevelWarning, e.policy.Alert}, {LevelExhausted, decimal.NewFromInt(1)}} {
			if !b.AtLeast(lv.th) {
				continue
			}
			ps := b.Start
			if e.policy.Budgets[i].Sliding() {
				ps = e.policy.Budgets[i].dayStart(now, e.policy.Location)
			}
			ok, err := e.store.SendAlertOnce(ctx, Alert{Gate: GateScaling, Level: lv.level, Threshold: lv.th.String(),
				Budget: b, PeriodStart: ps.UTC(), At: now.UTC(), By: e.by})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ok {
				sent++
				if e.metrics != nil {
					e.metrics.Alerts.WithLabelValues(lv.level).Inc()
				}
				e.log.Warn("budget alert", "budget", b.Name, "level", lv.level, "utilization", b.Percent())
			}
		}
	}
	return sent, errors.Join(errs...)
}

func (b Budget) dayStart(now time.Time, loc *time.Location) time.Time {
	y, m, d := now.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// triggerGap is the least time between two evaluations started by Trigger.
const triggerGap = 150 * time.Millisecond

// Run evaluates on every Trigger, every interval and at each period
// boundary, until ctx ends. Errors are logged and retried next time.
func (e *Evaluator) Run(ctx context.Context) error {
	if err := e.store.Reconcile(ctx); err != nil {
		e.log.Warn("reconciling gate state", "err", err)
	}
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			e.refreshServices(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	tick := time.NewTicker(e.interval)
	defer tick.Stop()
	boundary := time.NewTimer(time.Until(e.policy.NextBoundary(e.now())))
	defer boundary.Stop()
	var last time.Time
	for {
		last = time.Now()
		if _, err := e.Evaluate(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("gate evaluation failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-e.trigger:
			// Under load every flush triggers: coalesce them so the gate
			// reads the rollups at most every triggerGap, well inside its
			// one-second reaction budget, instead of competing with inserts.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(triggerGap - time.Since(last)):
			}
		case <-tick.C:
		case <-boundary.C:
			boundary.Reset(time.Until(e.policy.NextBoundary(e.now().Add(time.Millisecond))))
		}
	}
}

// Override is a person's change of mode through `audit gate`: enable,
// disable or auto, with a reason and who. It is committed like a
// transition and published as an event with source manual. Statuses are the
// spends at that moment, for the history.
func Override(ctx context.Context, s *Store, p Policy, mode, reason, by string, st []BudgetStatus, now time.Time) (State, error) {
	if reason == "" {
		return State{}, errors.New("a reason is required: every gate change is kept in history with its reason")
	}
	for attempt := 0; attempt < 5; attempt++ {
		cur, rev, err := s.Load(ctx)
		if err != nil {
			return State{}, err
		}
		v := p.Decide(cur.AutoState, st)
		n := cur
		n.Gate, n.Source, n.By, n.At, n.Previous, n.Seq = GateScaling, SourceManual, by, now.UTC(), cur.State, cur.Seq+1
		n.withStatuses(st)
		n.AutoState, n.ModeUntil, n.Budget = v.State, nil, ""
		switch mode {
		case ModeEnabled:
			n.Mode, n.State, n.Reason = ModeEnabled, StateActive, reason
		case ModeDisabled:
			// Lapses at the end of the current day in the budgets' zone.
			y, m, d := now.In(p.Location).Date()
			until := time.Date(y, m, d+1, 0, 0, 0, 0, p.Location).UTC()
			n.Mode, n.State, n.Reason, n.ModeUntil = ModeDisabled, StateInactive, reason, &until
		case ModeAuto:
			n.Mode, n.State, n.Budget = ModeAuto, v.State, v.Budget
			n.Reason = reason + " (automatic evaluation: " + v.Reason + ")"
		default:
			return State{}, fmt.Errorf("unknown gate mode %q", mode)
		}
		err = s.Commit(ctx, n, rev)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return n, err
	}
	return State{}, ErrConflict
}
