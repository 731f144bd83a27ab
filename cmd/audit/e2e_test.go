package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/loadgen"
	"github.com/spendgate/spendgate/internal/olap"
	"github.com/spendgate/spendgate/internal/period"
	"github.com/spendgate/spendgate/internal/testenv"
)

// Events published through NATS to a real ingest come out of summary,
// costs, export and export-prometheus as the test computes them itself.
func TestEndToEndThroughIngest(t *testing.T) {
	f := newFixture(t)
	cfg := testenv.IngestConfig(t, f.natsURL, f.ch.Database())
	cfg.Budgets = f.app(t).cfg.Budgets
	testenv.StartIngest(t, cfg)

	// The test's own arithmetic: New York day, ISO week and month around
	// fixedNow (Wednesday 2026-05-20 12:00Z), written out by hand.
	dayStart, dayEnd := "2026-05-20T04:00:00Z", "2026-05-21T04:00:00Z"
	weekStart, weekEnd := "2026-05-18T04:00:00Z", "2026-05-25T04:00:00Z"
	monthStart, monthEnd := "2026-05-01T04:00:00Z", "2026-06-01T04:00:00Z"
	in := func(ts time.Time, a, b string) bool {
		s, _ := time.Parse(time.RFC3339, a)
		e, _ := time.Parse(time.RFC3339, b)
		return !ts.Before(s) && ts.Before(e)
	}
	type sums struct {
		total     decimal.Decimal
		bySvc     map[string]decimal.Decimal
		bySvcOp   map[string]decimal.Decimal
		published int
	}
	newSums := func() *sums {
		return &sums{bySvc: map[string]decimal.Decimal{}, bySvcOp: map[string]decimal.Decimal{}}
	}
	day, week, month := newSums(), newSums(), newSums()

	gen := loadgen.NewGenerator(99, "e2e-")
	// Spread 3,000 events over 2026-04-29 .. 2026-05-22: some outside each period.
	base := time.Date(2026, 4, 29, 0, 0, 0, 0, time.UTC)
	step := 23*24*time.Hour/3000 + 7*time.Second
	nc, err := nats.Connect(f.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3000; i++ {
		ts := base.Add(time.Duration(i) * step)
		gen.Now = func() time.Time { return ts }
		ev := gen.Next()
		m, err := loadgen.Msg(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
		for _, p := range []struct {
			s    *sums
			a, b string
		}{{day, dayStart, dayEnd}, {week, weekStart, weekEnd}, {month, monthStart, monthEnd}} {
			if in(ev.TS, p.a, p.b) {
				p.s.total = p.s.total.Add(ev.CostUSD)
				p.s.bySvc[ev.Service] = p.s.bySvc[ev.Service].Add(ev.CostUSD)
				p.s.bySvcOp[ev.Service+"/"+ev.Operation] = p.s.bySvcOp[ev.Service+"/"+ev.Operation].Add(ev.CostUSD)
				p.s.published++
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publishes not acked")
	}
	if day.published == 0 || week.published <= day.published || month.published <= week.published {
		t.Fatalf("fixture spread wrong: %d %d %d", day.published, week.published, month.published)
	}
	all := period.Range{Start: base, End: base.AddDate(0, 2, 0)}
	testenv.Eventually(t, 60*time.Second, "all events stored", func() bool {
		s, err := f.ch.RawTotal(context.Background(), all)
		return err == nil && s.Events == 3000
	})
	testenv.Eventually(t, 5*time.Second, "rollup complete", func() bool {
		s, err := f.ch.Total(context.Background(), all, olap.Filter{})
		return err == nil && s.Events == 3000
	})

	// summary --format json: the seed's keys, exact.
	out, errOut, code := run(t, f, "summary", "--format", "json")
	if code != 0 {
		t.Fatalf("summary: %s", errOut)
	}
	var sum map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatal(err)
	}
	num := func(raw json.RawMessage) decimal.Decimal { return decimal.RequireFromString(string(raw)) }
	if got := num(sum["daily_cost"]); !got.Equal(day.total) {
		t.Errorf("summary daily_cost %s, want %s", got, day.total)
	}
	if got := num(sum["monthly_cost"]); !got.Equal(month.total) {
		t.Errorf("summary monthly_cost %s, want %s", got, month.total)
	}
	wantPct := month.total.Mul(decimal.NewFromInt(100)).DivRound(decimal.NewFromInt(1000), 2)
	if got := num(sum["monthly_percentage"]); !got.Equal(wantPct) {
		t.Errorf("monthly_percentage %s, want %s", got, wantPct)
	}

	// costs --period day|week|month --format json.
	for _, p := range []struct {
		name string
		s    *sums
	}{{"day", day}, {"week", week}, {"month", month}} {
		out, errOut, code := run(t, f, "costs", "--period", p.name, "--format", "json")
		if code != 0 {
			t.Fatalf("costs %s: %s", p.name, errOut)
		}
		var c struct {
			Total    json.RawMessage `json:"total_cost"`
			Services []struct {
				Service    string          `json:"service"`
				Cost       json.RawMessage `json:"cost"`
				Operations []struct {
					Operation string          `json:"operation"`
					Cost      json.RawMessage `json:"cost"`
				} `json:"operations"`
			} `json:"services"`
		}
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatal(err)
		}
		if got := num(c.Total); !got.Equal(p.s.total) {
			t.Errorf("costs %s total %s, want %s", p.name, got, p.s.total)
		}
		if len(c.Services) != len(p.s.bySvc) {
			t.Errorf("costs %s: %d services, want %d", p.name, len(c.Services), len(p.s.bySvc))
		}
		ops := 0
		for _, s := range c.Services {
			if got := num(s.Cost); !got.Equal(p.s.bySvc[s.Service]) {
				t.Errorf("costs %s %s = %s, want %s", p.name, s.Service, got, p.s.bySvc[s.Service])
			}
			for _, o := range s.Operations {
				ops++
				if got := num(o.Cost); !got.Equal(p.s.bySvcOp[s.Service+"/"+o.Operation]) {
					t.Errorf("costs %s %s/%s = %s, want %s", p.name, s.Service, o.Operation, got, p.s.bySvcOp[s.Service+"/"+o.Operation])
				}
			}
		}
		if ops != len(p.s.bySvcOp) {
			t.Errorf("costs %s: %d operations, want %d", p.name, ops, len(p.s.bySvcOp))
		}
	}

	// export --period month as JSON and CSV files.
	jsonFile := filepath.Join(f.dir, "report.json")
	if _, errOut, code := run(t, f, "export", "--period", "month", "--output", jsonFile); code != 0 {
		t.Fatalf("export: %s", errOut)
	}
	var exp struct {
		Period    string                                `json:"period"`
		Start     string                                `json:"start_date"`
		End       string                                `json:"end_date"`
		Total     json.RawMessage                       `json:"total_cost"`
		BySvc     map[string]json.RawMessage            `json:"service_breakdown"`
		BySvcOp   map[string]map[string]json.RawMessage `json:"operation_breakdown"`
		Generated time.Time                             `json:"generated_at"`
	}
	data, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &exp); err != nil {
		t.Fatal(err)
	}
	if exp.Period != "month" || exp.Start != "2026-05-01" || exp.End != "2026-05-31" || !exp.Generated.Equal(fixedNow) || !num(exp.Total).Equal(month.total) {
		t.Errorf("export header: %s %s %s %s %s", exp.Period, exp.Start, exp.End, exp.Generated, exp.Total)
	}
	for svc, want := range month.bySvc {
		if got := num(exp.BySvc[svc]); !got.Equal(want) {
			t.Errorf("export service %s = %s, want %s", svc, got, want)
		}
	}
	for key, want := range month.bySvcOp {
		s, o, _ := strings.Cut(key, "/")
		if got := num(exp.BySvcOp[s][o]); !got.Equal(want) {
			t.Errorf("export %s = %s, want %s", key, got, want)
		}
	}
	csvFile := filepath.Join(f.dir, "report.csv")
	if _, errOut, code := run(t, f, "export", "--period", "month", "--format", "csv", "--output", csvFile); code != 0 {
		t.Fatalf("export csv: %s", errOut)
	}
	fh, err := os.Open(csvFile)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(fh).ReadAll()
	fh.Close()
	if err != nil {
		t.Fatal(err)
	}
	var csvTotal decimal.Decimal
	for _, r := range recs[1:] {
		v := decimal.RequireFromString(r[5])
		csvTotal = csvTotal.Add(v)
		if want := month.bySvcOp[r[3]+"/"+r[4]]; !v.Equal(want) {
			t.Errorf("csv %s/%s = %s, want %s", r[3], r[4], v, want)
		}
	}
	if !csvTotal.Equal(month.total) || len(recs)-1 != len(month.bySvcOp) {
		t.Errorf("csv total %s over %d rows, want %s over %d", csvTotal, len(recs)-1, month.total, len(month.bySvcOp))
	}

	// export-prometheus: parse it back, and promtool accepts it.
	promFile := filepath.Join(f.dir, "spendgate.prom")
	if _, errOut, code := run(t, f, "export-prometheus", "--output", promFile); code != 0 {
		t.Fatalf("export-prometheus: %s", errOut)
	}
	ph, err := os.Open(promFile)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(ph)
	ph.Close()
	if err != nil {
		t.Fatal(err)
	}
	for label, want := range map[string]decimal.Decimal{"daily": day.total, "monthly": month.total} {
		var got float64
		for _, m := range fams["spendgate_spend_usd"].GetMetric() {
			if m.GetLabel()[0].GetValue() == label {
				got = m.GetGauge().GetValue()
			}
		}
		if w := want.InexactFloat64(); got < w-1e-6 || got > w+1e-6 {
			t.Errorf("spendgate_spend_usd{period=%q} = %v, want %v", label, got, w)
		}
	}
	if n := len(fams["spendgate_service_spend_usd"].GetMetric()); n != len(day.bySvc)+len(month.bySvc) {
		t.Errorf("%d service series, want %d", n, len(day.bySvc)+len(month.bySvc))
	}
	promtoolCheck(t, promFile)
}

// promtoolCheck runs `promtool check metrics` on a file; promtool is needed
// in CI (scripts/tools.sh installs it).
func promtoolCheck(t *testing.T, file string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is needed (scripts/tools.sh installs Debian's prometheus)")
		}
		t.Skip("promtool not installed: run scripts/tools.sh")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(data))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
