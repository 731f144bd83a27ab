package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/cli"
	"github.com/spendgate/spendgate/internal/config"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/gate"
	"github.com/spendgate/spendgate/internal/olap"
	"github.com/spendgate/spendgate/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixedNow is the audit's clock in these tests: Wednesday 2026-05-20, 12:00 UTC.
var fixedNow = time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)

// fixture is a ClickHouse database and a NATS server holding known data.
type fixture struct {
	args    []string // the connection flags
	ch      *olap.Client
	dir     string
	cfgFile string
	natsURL string
}

// app is an audit app on the fixture, for seeding the gate.
func (f *fixture) app(t *testing.T) *app {
	t.Helper()
	cfg, err := config.Load(config.New(), f.cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATS.URL, cfg.ClickHouse.Addr, cfg.ClickHouse.Database = f.natsURL, testenv.ClickHouseAddr(), f.ch.Database()
	p, err := gate.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &app{cfg: cfg, policy: p}
}

const fixtureConfig = `budgets:
  timezone: America/New_York
  daily_usd: 50
  monthly_usd: 1000
  scoped:
    - {name: twilio-daily, service: twilio, period: day, limit_usd: 5}
gate:
  critical_operations:
    sendgrid: [send_email]
`

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ns := testenv.NATS(t)
	ch := testenv.ClickHouse(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "spendgate.yaml")
	if err := os.WriteFile(cfgFile, []byte(fixtureConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &fixture{ch: ch, dir: dir, cfgFile: cfgFile, natsURL: ns.ClientURL(), args: []string{"--config", cfgFile, "--clickhouse-addr", testenv.ClickHouseAddr(),
		"--clickhouse-database", ch.Database(), "--nats-url", ns.ClientURL()}}
	oldNow, oldWho := now, whoami
	now = func() time.Time { return fixedNow }
	whoami = func() string { return "ops@test" }
	t.Cleanup(func() { now, whoami = oldNow, oldWho })
	return f
}

// seed stores a known month of costs: New York days are 04:00Z to 04:00Z.
func (f *fixture) seed(t *testing.T) {
	t.Helper()
	rows := []struct{ ts, service, op, cost string }{
		{"2026-05-20T10:30:00Z", "openai", "chat_completion", "6.5"},
		{"2026-05-20T11:00:00Z", "openai", "embeddings", "2"},
		{"2026-05-20T09:00:00Z", "sendgrid", "send_email", "3.25"},
		{"2026-05-20T05:00:00Z", "aws", "s3_storage", "0.75"},
		{"2026-05-20T03:59:59Z", "openai", "chat_completion", "100"},   // May 19 in New York
		{"2026-05-18T04:00:00Z", "twilio", "send_sms", "7.123456789"},  // Monday: this week
		{"2026-05-17T12:00:00Z", "anthropic", "messages", "40"},        // Sunday: last week
		{"2026-05-01T04:00:00Z", "openai", "chat_completion", "265.8"}, // first instant of May
		{"2026-05-01T03:59:59Z", "aws", "s3_storage", "999"},           // still April 30
	}
	var batch []olap.Row
	for i, r := range rows {
		ts, _ := time.Parse(time.RFC3339, r.ts)
		batch = append(batch, olap.Row{Event: events.Event{EventID: fmt.Sprintf("fx-%d", i), TS: ts, Service: r.service,
			Operation: r.op, CostUSD: decimal.RequireFromString(r.cost), Units: 1}, StreamSeq: uint64(i + 1)})
	}
	if err := f.ch.InsertEvents(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

// seedGate gives the gate a history: activated by the evaluator, a manual
// enable, back to auto.
func (f *fixture) seedGate(t *testing.T, a *app) {
	t.Helper()
	ctx := context.Background()
	s, err := a.gateStore(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	clock := at("2026-05-20T09:15:00Z")
	ev := gate.NewEvaluator(a.policy, f.ch, s, nil, testenv.Logger(t), gate.EvaluatorOptions{Now: func() time.Time { return clock }, By: "spendgate-ingest@w1"})
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := a.policy.Statuses(ctx, f.ch, clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gate.Override(ctx, s, a.policy, gate.ModeEnabled, "launch week: hold scaling", "ops@bastion", st, at("2026-05-20T10:00:00Z")); err != nil {
		t.Fatal(err)
	}
	if _, err := gate.Override(ctx, s, a.policy, gate.ModeAuto, "launch over", "ops@bastion", st, at("2026-05-20T11:30:00Z")); err != nil {
		t.Fatal(err)
	}
}

// run executes audit in-process and returns stdout, stderr and the exit code.
func run(t *testing.T, f *fixture, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runTo(context.Background(), f, &out, &errOut, args...)
	return out.String(), errOut.String(), code
}

func runTo(ctx context.Context, f *fixture, out, errOut io.Writer, args ...string) int {
	root := rootCmd(&app{})
	root.SetOut(out)
	return cli.ExecuteContext(ctx, root, append(append([]string{}, f.args...), args...), errOut)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/audit -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

func TestGoldenOutputs(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	a := f.app(t)
	defer a.close()
	f.seedGate(t, a)

	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"summary", []string{"summary"}, 0},
		{"summary_json", []string{"summary", "--format", "json"}, 0},
		{"costs_day", []string{"costs"}, 0},
		{"costs_week", []string{"costs", "--period", "week"}, 0},
		{"costs_month", []string{"costs", "--period", "month", "--top", "1"}, 0},
		{"costs_range", []string{"costs", "--from", "2026-04-30", "--to", "2026-05-17"}, 0},
		{"costs_service", []string{"costs", "--period", "month", "--service", "openai"}, 0},
		{"costs_month_csv", []string{"costs", "--period", "month", "--format", "csv"}, 0},
		{"costs_day_json", []string{"costs", "--format", "json"}, 0},
		{"export_month", []string{"export", "--period", "month"}, 0},
		{"export_month_csv", []string{"export", "--period", "month", "--format", "csv"}, 0},
		{"export_prometheus", []string{"export-prometheus"}, 0},
		{"gate_status", []string{"gate", "status"}, 0},
		{"gate_status_json", []string{"gate", "status", "--format", "json", "--limit", "1"}, 0},
		{"gate_history", []string{"gate", "history"}, 0},
		{"gate_history_json", []string{"gate", "history", "--format", "json", "--limit", "2"}, 0},
		{"gate_check_allowed", []string{"gate", "check", "--service", "openai", "--operation", "chat_completion"}, 0},
		{"gate_enable", []string{"gate", "enable", "--reason", "incident 42"}, 0},
		{"gate_check_blocked", []string{"gate", "check", "--service", "openai", "--operation", "chat_completion"}, cli.ExitBlocked},
		{"gate_check_critical", []string{"gate", "check", "--service", "sendgrid", "--operation", "send_email", "--format", "json"}, 0},
		{"gate_disable", []string{"gate", "disable", "--reason", "budget raised", "--format", "json"}, 0},
		{"gate_status_manual", []string{"gate", "status"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, f, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errOut)
			}
			golden(t, tc.name, out)
		})
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"bad flag", []string{"summary", "--bogus"}, cli.ExitUsage, "unknown flag: --bogus"},
		{"bad period", []string{"costs", "--period", "year"}, cli.ExitUsage, `"year": unknown period`},
		{"bad date", []string{"costs", "--from", "2026-02-30", "--to", "2026-03-01"}, cli.ExitUsage, `bad --from date "2026-02-30"`},
		{"from after to", []string{"export", "--from", "2026-05-02", "--to", "2026-05-01"}, cli.ExitUsage, "--from is after --to"},
		{"to without from", []string{"costs", "--to", "2026-05-01"}, cli.ExitUsage, "--to needs --from"},
		{"bad format", []string{"summary", "--format", "csv"}, cli.ExitUsage, `--format "csv"`},
		{"enable without reason", []string{"gate", "enable"}, cli.ExitUsage, "gate enable needs --reason"},
		{"check without operation", []string{"gate", "check", "--service", "openai"}, cli.ExitUsage, "needs --service and --operation"},
		{"unknown command", []string{"gate", "open"}, cli.ExitUsage, ""},
		{"unwritable output", []string{"export", "--output", "/nonexistent-dir/report.json"}, cli.ExitFailed, "cannot write /nonexistent-dir/report.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := run(t, f, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.stderr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", code, errOut, tc.code, tc.stderr)
			}
			if tc.code == cli.ExitUsage && tc.name != "unknown command" && !strings.Contains(errOut, "Usage:") {
				t.Fatalf("usage not printed:\n%s", errOut)
			}
		})
	}
	if _, err := os.Stat("/nonexistent-dir/report.json"); !os.IsNotExist(err) {
		t.Fatal("a partial file was left behind")
	}
}

func TestUnreachableServersAreNamed(t *testing.T) {
	f := newFixture(t)
	deadCH := "127.0.0.1:1"
	_, errOut, code := run(t, f, "costs", "--clickhouse-addr", deadCH)
	if code != cli.ExitFailed || !strings.Contains(errOut, "clickhouse at "+deadCH) || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q: want exit 1 and one line naming clickhouse at %s", code, errOut, deadCH)
	}
	_, errOut, code = run(t, f, "gate", "check", "--service", "a", "--operation", "b", "--nats-url", "nats://127.0.0.1:1")
	if code != cli.ExitFailed || !strings.Contains(errOut, "nats at nats://127.0.0.1:1") {
		t.Fatalf("exit %d, stderr %q: want exit 1 naming nats at nats://127.0.0.1:1", code, errOut)
	}
}

func TestGateControlAndCheck(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	out, errOut, code := run(t, f, "gate", "enable", "--reason", "incident 42")
	if code != 0 || !strings.Contains(out, "Scaling gate ACTIVE (mode enabled)") {
		t.Fatalf("enable: %d %q %q", code, out, errOut)
	}
	out, _, code = run(t, f, "gate", "check", "--service", "openai", "--operation", "chat_completion")
	if code != cli.ExitBlocked || !strings.HasPrefix(out, "blocked: openai/chat_completion: gate active: incident 42") {
		t.Fatalf("check while active: %d %q", code, out)
	}
	out, _, code = run(t, f, "gate", "check", "--service", "sendgrid", "--operation", "send_email")
	if code != 0 || !strings.HasPrefix(out, "allowed: ") {
		t.Fatalf("critical operation while active: %d %q", code, out)
	}
	_, _, code = run(t, f, "gate", "disable", "--reason", "budget raised")
	if code != 0 {
		t.Fatalf("disable: %d", code)
	}
	out, _, _ = run(t, f, "gate", "status")
	for _, want := range []string{"Status: INACTIVE", "Reason: budget raised", "Mode: manual disabled until 2026-05-21 00:00:00", "(manual enable by ", "incident 42"} {
		if !strings.Contains(out, want) {
			t.Errorf("gate status lacks %q:\n%s", want, out)
		}
	}
	_, _, code = run(t, f, "gate", "check", "--service", "openai", "--operation", "chat_completion")
	if code != 0 {
		t.Fatalf("check while disabled: %d", code)
	}
}

// gate watch prints the current state, then each new event, one JSON line
// each, until cancelled.
func TestGateWatch(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	if _, errOut, code := run(t, f, "gate", "enable", "--reason", "first"); code != 0 {
		t.Fatal(errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- runTo(ctx, f, pw, io.Discard, "gate", "watch")
		pw.Close()
	}()
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() map[string]any {
		select {
		case l := <-lines:
			var v map[string]any
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Fatalf("not a JSON line: %q", l)
			}
			return v
		case <-time.After(10 * time.Second):
			t.Fatal("no line from gate watch")
		}
		return nil
	}
	if v := next(); v["reason"] != "first" || v["state"] != "active" {
		t.Fatalf("first line: %v", v)
	}
	// The watcher is subscribed once it printed the current state; a new
	// event may still race its subscription, so keep changing until seen.
	if _, errOut, code := run(t, f, "gate", "disable", "--reason", "second"); code != 0 {
		t.Fatal(errOut)
	}
	if v := next(); v["reason"] != "second" || v["state"] != "inactive" || v["mode"] != "disabled" {
		t.Fatalf("second line: %v", v)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("gate watch exited %d after interrupt", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gate watch did not stop")
	}
}

// auto takes an optional reason (SPEC lists it bare); enable and disable
// refuse without one.
func TestAutoNeedsNoReason(t *testing.T) {
	f := newFixture(t)
	f.seed(t)
	out, errOut, code := run(t, f, "gate", "auto")
	if code != 0 || !strings.Contains(out, "Scaling gate INACTIVE (mode auto)") || !strings.Contains(out, "handed back to the automatic evaluation") {
		t.Fatalf("gate auto: %d %q %q", code, out, errOut)
	}
}
