package gate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/config"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/gate"
	"github.com/spendgate/spendgate/internal/olap"
	"github.com/spendgate/spendgate/internal/testenv"
)

// clock is an injectable, settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(s string) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// env is a gate against real NATS and ClickHouse with a fake clock.
type env struct {
	t      *testing.T
	ch     *olap.Client
	js     jetstream.JetStream
	store  *gate.Store
	clock  *clock
	policy gate.Policy
	seq    int
}

func newEnv(t *testing.T, tz string, mutate func(*config.Config)) *env {
	t.Helper()
	_, js := testenv.JetStream(t)
	ch := testenv.ClickHouse(t)
	cfg, err := config.Load(config.New(), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Budgets.Timezone = tz
	cfg.Budgets.DailyUSD = decimal.NewFromInt(100)
	cfg.Budgets.MonthlyUSD = decimal.NewFromInt(1000)
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := gate.OpenStore(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := gate.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ch: ch, js: js, store: store, clock: &clock{}, policy: p}
}

func (e *env) evaluator(by string) *gate.Evaluator {
	return gate.NewEvaluator(e.policy, e.ch, e.store, nil, testenv.Logger(e.t), gate.EvaluatorOptions{Now: e.clock.Now, By: by})
}

// spend stores one event of cost usd at ts.
func (e *env) spend(ts, service, operation, usd string) {
	e.t.Helper()
	at, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.seq++
	err = e.ch.InsertEvents(context.Background(), []olap.Row{{Event: events.Event{
		EventID: fmt.Sprintf("g-%d", e.seq), TS: at, Service: service, Operation: operation,
		CostUSD: decimal.RequireFromString(usd),
	}, StreamSeq: uint64(e.seq)}})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) eval(ev *gate.Evaluator) gate.Result {
	e.t.Helper()
	r, err := ev.Evaluate(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// history is every gate-state event, oldest first, each checked against
// schemas/gate_event.schema.json.
func (e *env) history() []gate.State {
	e.t.Helper()
	h, err := e.store.History(context.Background(), 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
		h[i], h[j] = h[j], h[i]
	}
	for _, st := range h {
		validate(e.t, "gate_event.schema.json", st)
	}
	return h
}

func (e *env) states() string {
	e.t.Helper()
	s := ""
	for _, st := range e.history() {
		s += fmt.Sprintf("%s/%s ", st.State, st.Source)
	}
	return s
}

var (
	schemaOnce sync.Once
	compiler   *jsonschema.Compiler
)

func validate(t *testing.T, name string, v any) {
	t.Helper()
	schemaOnce.Do(func() {
		compiler = jsonschema.NewCompiler()
		compiler.AssertFormat()
		for _, f := range []string{"gate_event.schema.json", "gate_alert.schema.json"} {
			doc, err := jsonschema.UnmarshalJSON(mustOpen(t, filepath.Join("..", "..", "schemas", f)))
			if err != nil {
				t.Fatal(err)
			}
			if err := compiler.AddResource("https://spendgate.dev/schemas/"+f, doc); err != nil {
				t.Fatal(err)
			}
		}
	})
	sch, err := compiler.Compile("https://spendgate.dev/schemas/" + name)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytesReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("%s does not validate %s: %v", name, data, err)
	}
}

func TestCrossingIntoActive(t *testing.T) {
	e := newEnv(t, "UTC", nil)
	ev := e.evaluator("a")
	e.clock.Set("2026-05-20T10:00:00Z")
	e.spend("2026-05-20T09:00:00Z", "openai", "chat_completion", "89.999999999")
	if r := e.eval(ev); r.State.Active() {
		t.Fatalf("active at 89.999999999 of 100: %+v", r.State)
	}
	e.spend("2026-05-20T09:30:00Z", "openai", "chat_completion", "0.000000001") // exactly 90%
	r := e.eval(ev)
	if !r.State.Active() || !r.Changed || r.State.Budget != gate.BudgetDaily || r.State.Source != gate.SourceAuto {
		t.Fatalf("not activated at exactly 90%%: %+v", r.State)
	}
	if !r.State.DailySpendUSD.Equal(decimal.NewFromInt(90)) || !r.State.DailyBudgetUSD.Equal(decimal.NewFromInt(100)) {
		t.Fatalf("event spends: %s of %s", r.State.DailySpendUSD, r.State.DailyBudgetUSD)
	}
	if got, want := e.states(), "inactive/auto active/auto "; got != want {
		t.Fatalf("history %q, want %q", got, want)
	}
	// Evaluating again changes nothing and publishes nothing.
	if r := e.eval(ev); r.Changed {
		t.Fatal("a second evaluation committed a change")
	}
	if n := len(e.history()); n != 2 {
		t.Fatalf("%d events, want 2", n)
	}
}

// Spend oscillating between the release (85%) and gate (90%) thresholds
// gives one transition; only dropping below release deactivates.
func TestHysteresis(t *testing.T) {
	e := newEnv(t, "UTC", func(c *config.Config) {
		// A sliding 24h window lets spend fall as the clock moves on.
		c.Budgets.Window = "sliding"
	})
	ev := e.evaluator("a")
	e.spend("2026-05-20T00:00:00Z", "openai", "chat_completion", "80")
	e.spend("2026-05-20T01:00:00Z", "openai", "chat_completion", "6") // 86
	e.spend("2026-05-20T02:00:00Z", "openai", "chat_completion", "5") // 91
	e.spend("2026-05-20T03:00:00Z", "openai", "chat_completion", "2") // 93
	e.clock.Set("2026-05-20T01:30:00Z")                               // 86%: inactive
	e.eval(ev)
	e.clock.Set("2026-05-20T02:30:00Z") // 91%: active
	e.eval(ev)
	for _, at := range []string{"2026-05-20T02:40:00Z", "2026-05-20T03:30:00Z", "2026-05-20T04:00:00Z"} {
		e.clock.Set(at) // 91%, 93%, 93%
		e.eval(ev)
	}
	// 80 drops out of the window at 00:00 + 24h: 13% left, below release.
	e.clock.Set("2026-05-21T00:00:30Z")
	r := e.eval(ev)
	if r.State.Active() {
		t.Fatalf("still active at %s", r.Statuses[0].Percent())
	}
	if got, want := e.states(), "inactive/auto active/auto inactive/auto "; got != want {
		t.Fatalf("history %q, want %q", got, want)
	}

	// Now hover between 85% and 90% while active (older events leaving the
	// window): no flapping until spend is below 85%.
	e2 := newEnv(t, "UTC", func(c *config.Config) { c.Budgets.Window = "sliding" })
	ev2 := e2.evaluator("b")
	e2.spend("2026-05-20T00:00:00Z", "openai", "chat_completion", "8")
	e2.spend("2026-05-20T00:10:00Z", "openai", "chat_completion", "2.000000001")
	e2.spend("2026-05-20T01:00:00Z", "openai", "chat_completion", "84.999999999")
	e2.clock.Set("2026-05-20T12:00:00Z") // 95%
	if r := e2.eval(ev2); !r.State.Active() {
		t.Fatal("not active at 95%")
	}
	for _, at := range []string{"2026-05-21T00:00:01Z", "2026-05-21T00:05:00Z", "2026-05-21T00:09:59Z"} {
		e2.clock.Set(at) // 87%
		if r := e2.eval(ev2); !r.State.Active() {
			t.Fatalf("released at %s (release threshold 85%%)", r.Statuses[0].Percent())
		}
	}
	e2.clock.Set("2026-05-21T00:10:01Z") // 84.999999999%
	if r := e2.eval(ev2); r.State.Active() {
		t.Fatal("still active below the release threshold")
	}
	if got, want := e2.states(), "active/auto inactive/auto "; got != want {
		t.Fatalf("history %q, want %q", got, want)
	}
}

// A new day starts at local midnight: on America/New_York's 23-hour DST day
// and in Asia/Kolkata (UTC+5:30), the boundary is exact to the second, and
// NextBoundary schedules the evaluation at that instant.
func TestDayRollsOverAtLocalMidnight(t *testing.T) {
	for _, tc := range []struct {
		tz, spendAt, before, boundary string
	}{
		{"America/New_York", "2026-03-08T20:00:00Z", "2026-03-09T03:59:59Z", "2026-03-09T04:00:00Z"},
		{"Asia/Kolkata", "2026-05-20T12:00:00Z", "2026-05-20T18:29:59Z", "2026-05-20T18:30:00Z"},
	} {
		t.Run(tc.tz, func(t *testing.T) {
			e := newEnv(t, tc.tz, nil)
			ev := e.evaluator("a")
			e.spend(tc.spendAt, "openai", "chat_completion", "95")
			e.clock.Set(tc.before)
			if r := e.eval(ev); !r.State.Active() {
				t.Fatalf("not active at %s", tc.before)
			}
			if got := e.policy.NextBoundary(e.clock.Now()).UTC().Format(time.RFC3339); got != tc.boundary {
				t.Fatalf("next boundary %s, want %s", got, tc.boundary)
			}
			e.clock.Set(tc.boundary)
			r := e.eval(ev)
			if r.State.Active() || !r.State.DailySpendUSD.IsZero() {
				t.Fatalf("at the new day's first instant: state %s, daily spend %s", r.State.State, r.State.DailySpendUSD)
			}
			if got, want := r.Statuses[0].Start.Format(time.RFC3339), tc.boundary; got != want {
				t.Fatalf("day starts %s, want %s", got, want)
			}
		})
	}
}

func TestMonthRollsOver(t *testing.T) {
	e := newEnv(t, "Asia/Kolkata", func(c *config.Config) { c.Budgets.DailyUSD = decimal.NewFromInt(10000) })
	ev := e.evaluator("a")
	e.spend("2026-05-10T00:00:00Z", "openai", "chat_completion", "500")
	e.spend("2026-05-31T18:00:00Z", "openai", "chat_completion", "450") // still May 31 in Kolkata (23:30)
	e.clock.Set("2026-05-31T18:29:59Z")
	if r := e.eval(ev); !r.State.Active() || r.State.Budget != gate.BudgetMonthly {
		t.Fatalf("not active on the monthly budget: %+v", r.State)
	}
	if got := e.policy.NextBoundary(e.clock.Now()).UTC().Format(time.RFC3339); got != "2026-05-31T18:30:00Z" {
		t.Fatalf("next boundary %s", got)
	}
	e.clock.Set("2026-05-31T18:30:00Z") // June 1, 00:00 in Kolkata
	r := e.eval(ev)
	if r.State.Active() || !r.State.MonthlySpendUSD.IsZero() {
		t.Fatalf("June starts with state %s and monthly spend %s", r.State.State, r.State.MonthlySpendUSD)
	}
}

// An event that arrives late, dated yesterday, counts in yesterday (and the
// month), never in today.
func TestLateEventCountsInItsOwnDay(t *testing.T) {
	e := newEnv(t, "America/New_York", nil)
	ev := e.evaluator("a")
	e.clock.Set("2026-05-20T14:00:00Z")
	e.spend("2026-05-20T03:59:59Z", "openai", "chat_completion", "95") // 23:59:59 on May 19 in New York
	r := e.eval(ev)
	if r.State.Active() || !r.State.DailySpendUSD.IsZero() {
		t.Fatalf("late event counted today: %s, state %s", r.State.DailySpendUSD, r.State.State)
	}
	if !r.State.MonthlySpendUSD.Equal(decimal.NewFromInt(95)) {
		t.Fatalf("monthly %s, want 95", r.State.MonthlySpendUSD)
	}
}

func TestScopedBudgetTrips(t *testing.T) {
	e := newEnv(t, "UTC", func(c *config.Config) {
		c.Budgets.Scoped = []config.ScopedBudget{
			{Name: "openai-chat-daily", Service: "openai", Operation: "chat_completion", Period: "day", LimitUSD: decimal.NewFromInt(10)},
			{Name: "sendgrid-month", Service: "sendgrid", Period: "month", LimitUSD: decimal.NewFromInt(500)},
		}
	})
	ev := e.evaluator("a")
	e.clock.Set("2026-05-20T12:00:00Z")
	e.spend("2026-05-20T10:00:00Z", "openai", "embeddings", "20") // not in the scope
	e.spend("2026-05-20T10:00:00Z", "sendgrid", "send_email", "8.5")
	e.spend("2026-05-20T11:00:00Z", "openai", "chat_completion", "8.99")
	if r := e.eval(ev); r.State.Active() {
		t.Fatalf("active: %s", r.State.Reason)
	}
	e.spend("2026-05-20T11:30:00Z", "openai", "chat_completion", "0.01") // 9.00 of 10
	r := e.eval(ev)
	if !r.State.Active() || r.State.Budget != "openai-chat-daily" {
		t.Fatalf("scoped budget did not trip the gate: %+v", r.State)
	}
	var found bool
	for _, b := range r.State.Budgets {
		if b.Name == "openai-chat-daily" {
			found = b.SpendUSD.Equal(decimal.NewFromInt(9)) && b.Service == "openai" && b.Operation == "chat_completion"
		}
	}
	if !found {
		t.Fatalf("event budgets: %+v", r.State.Budgets)
	}
}

// A manual enable is never replaced by evaluations that say inactive; set
// back to auto, the evaluator decides again. A manual disable lapses at the
// end of its day.
func TestManualOverrides(t *testing.T) {
	e := newEnv(t, "UTC", nil)
	ev := e.evaluator("ingest@a")
	e.clock.Set("2026-05-20T12:00:00Z")
	e.eval(ev)
	ctx := context.Background()
	st, err := e.policy.Statuses(ctx, e.ch, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gate.Override(ctx, e.store, e.policy, gate.ModeEnabled, "", "ops@h", st, e.clock.Now()); err == nil {
		t.Fatal("an override without a reason was accepted")
	}
	on, err := gate.Override(ctx, e.store, e.policy, gate.ModeEnabled, "launch week: hold scaling", "ops@h", st, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !on.Active() || on.Mode != gate.ModeEnabled || on.Source != gate.SourceManual || on.By != "ops@h" {
		t.Fatalf("enable: %+v", on)
	}
	for i := 0; i < 5; i++ {
		r := e.eval(ev)
		if !r.State.Active() || r.State.Mode != gate.ModeEnabled || r.Verdict.State != gate.StateInactive {
			t.Fatalf("evaluation %d replaced the manual enable: %+v (verdict %s)", i, r.State, r.Verdict.State)
		}
	}
	if _, err := gate.Override(ctx, e.store, e.policy, gate.ModeAuto, "launch over", "ops@h", st, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if r := e.eval(ev); r.State.Active() || r.State.Mode != gate.ModeAuto {
		t.Fatalf("after auto: %+v", r.State)
	}

	// Disable while the budget says active; it holds through the day.
	e.spend("2026-05-20T11:00:00Z", "openai", "chat_completion", "95")
	if r := e.eval(ev); !r.State.Active() {
		t.Fatal("not active at 95%")
	}
	st, _ = e.policy.Statuses(ctx, e.ch, e.clock.Now())
	off, err := gate.Override(ctx, e.store, e.policy, gate.ModeDisabled, "approved overspend", "cfo@h", st, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if off.Active() || off.ModeUntil == nil || off.ModeUntil.Format(time.RFC3339) != "2026-05-21T00:00:00Z" {
		t.Fatalf("disable: %+v", off)
	}
	e.clock.Set("2026-05-20T23:59:59Z")
	if r := e.eval(ev); r.State.Active() || r.Verdict.State != gate.StateActive {
		t.Fatalf("the disable did not hold: %+v", r.State)
	}
	// Next day: the disable lapses; the new day's spend is 0, so inactive, auto.
	e.spend("2026-05-21T00:00:00Z", "openai", "chat_completion", "91")
	e.clock.Set("2026-05-21T00:00:01Z")
	r := e.eval(ev)
	if r.State.Mode != gate.ModeAuto || !r.State.Active() {
		t.Fatalf("after the disable lapsed: %+v", r.State)
	}
	want := "inactive/auto active/manual inactive/manual active/auto inactive/manual active/auto "
	if got := e.states(); got != want {
		t.Fatalf("history %q, want %q", got, want)
	}
	h := e.history()
	if h[1].Reason != "launch week: hold scaling" || h[1].By != "ops@h" || h[4].By != "cfo@h" {
		t.Fatalf("history lost who or why: %+v", h[1])
	}
}

// However many evaluators run, one transition is one event.
func TestEvaluatorsPublishOneEventPerTransition(t *testing.T) {
	e := newEnv(t, "UTC", nil)
	e.clock.Set("2026-05-20T12:00:00Z")
	evs := []*gate.Evaluator{e.evaluator("a"), e.evaluator("b"), e.evaluator("c")}
	run := func() {
		var wg sync.WaitGroup
		for _, ev := range evs {
			for i := 0; i < 5; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := ev.Evaluate(context.Background()); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		wg.Wait()
	}
	run()
	e.spend("2026-05-20T11:00:00Z", "openai", "chat_completion", "91")
	run()
	e.clock.Set("2026-05-21T00:00:00Z")
	run()
	if got, want := e.states(), "inactive/auto active/auto inactive/auto "; got != want {
		t.Fatalf("history %q, want %q", got, want)
	}
	for i, st := range e.history() {
		if st.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, st.Seq)
		}
	}
}

// A restarted worker resumes from KV: no new event.
func TestRestartKeepsStateWithoutAnEvent(t *testing.T) {
	e := newEnv(t, "UTC", nil)
	e.clock.Set("2026-05-20T12:00:00Z")
	e.spend("2026-05-20T11:00:00Z", "openai", "chat_completion", "91")
	first := e.evaluator("a")
	if r := e.eval(first); !r.State.Active() {
		t.Fatal("not active")
	}
	restarted := e.evaluator("a")
	r := e.eval(restarted)
	if !r.State.Active() || r.Changed {
		t.Fatalf("restart changed the gate: %+v", r)
	}
	if n := len(e.history()); n != 1 {
		t.Fatalf("%d events after a restart, want 1", n)
	}
}

// A state committed to KV whose publish was lost (the writer died) is
// published once by Reconcile, never twice.
func TestReconcilePublishesALostEvent(t *testing.T) {
	e := newEnv(t, "UTC", nil)
	ctx := context.Background()
	kv, err := e.js.KeyValue(ctx, gate.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	st := gate.Initial()
	st.Seq, st.At, st.By, st.Reason = 1, time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC), "x@h", "committed, then the writer died"
	data, _ := json.Marshal(st)
	if _, err := kv.Create(ctx, gate.Key, data); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := e.store.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if h := e.history(); len(h) != 1 || h[0].Reason != st.Reason {
		t.Fatalf("history after reconcile: %+v", h)
	}
}

// Alerts go out once per budget, level and period, not on every evaluation.
func TestAlertsOncePerPeriod(t *testing.T) {
	e := newEnv(t, "UTC", func(c *config.Config) { c.Budgets.MonthlyUSD = decimal.NewFromInt(100000) })
	evs := []*gate.Evaluator{e.evaluator("a"), e.evaluator("b")}
	e.clock.Set("2026-05-20T12:00:00Z")
	e.spend("2026-05-20T10:00:00Z", "openai", "chat_completion", "80")
	sent := 0
	for i := 0; i < 4; i++ {
		sent += e.eval(evs[i%2]).AlertsSent
	}
	e.spend("2026-05-20T11:00:00Z", "openai", "chat_completion", "20") // 100%
	for i := 0; i < 4; i++ {
		sent += e.eval(evs[i%2]).AlertsSent
	}
	e.clock.Set("2026-05-21T12:00:00Z")
	e.spend("2026-05-21T10:00:00Z", "openai", "chat_completion", "85") // a new day: warn again
	for i := 0; i < 4; i++ {
		sent += e.eval(evs[i%2]).AlertsSent
	}
	if sent != 3 {
		t.Fatalf("%d alerts sent, want 3 (warning, exhausted, next day's warning)", sent)
	}
	cons, err := e.js.OrderedConsumer(context.Background(), events.StreamGate, jetstream.OrderedConsumerConfig{FilterSubjects: []string{gate.SubjectAlert}})
	if err != nil {
		t.Fatal(err)
	}
	var levels []string
	for i := 0; i < 3; i++ {
		m, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var a gate.Alert
		if err := json.Unmarshal(m.Data(), &a); err != nil {
			t.Fatal(err)
		}
		validate(t, "gate_alert.schema.json", a)
		levels = append(levels, a.Level+"@"+a.PeriodStart.Format("01-02"))
	}
	if got := fmt.Sprint(levels); got != "[warning@05-20 exhausted@05-20 warning@05-21]" {
		t.Fatalf("alerts %s", got)
	}
}

func TestAllowed(t *testing.T) {
	critical := map[string][]string{"sendgrid": {"send_email"}, "aws": {"*"}}
	active := gate.State{State: gate.StateActive, Reason: "daily budget at 91%"}
	for _, tc := range []struct {
		st                 gate.State
		service, operation string
		want               bool
	}{
		{gate.Initial(), "openai", "chat_completion", true},
		{active, "openai", "chat_completion", false},
		{active, "sendgrid", "send_email", true},
		{active, "sendgrid", "add_contact", false},
		{active, "aws", "anything", true},
	} {
		if got, why := gate.Allowed(tc.st, critical, tc.service, tc.operation); got != tc.want {
			t.Errorf("Allowed(%s, %s/%s) = %v (%s), want %v", tc.st.State, tc.service, tc.operation, got, why, tc.want)
		}
	}
}
