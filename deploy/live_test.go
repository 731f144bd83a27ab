package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/config"
	"github.com/spendgate/spendgate/internal/loadgen"
	"github.com/spendgate/spendgate/internal/testenv"
)

const published = 100

// startIngest runs a real ingest service on a test NATS server and the
// ClickHouse database db (a fresh migrated one when empty), with a scoped
// budget so the scoped gauges exist too, publishes events and returns the
// metrics address and what was published.
func startIngest(t *testing.T, db string) (string, loadgen.Result) {
	t.Helper()
	ns := testenv.NATS(t)
	if db == "" {
		db = testenv.ClickHouse(t).Database()
	}
	cfg := testenv.IngestConfig(t, ns.ClientURL(), db)
	cfg.Budgets.Scoped = []config.ScopedBudget{{Name: "openai-daily", Service: "openai", Period: "day", LimitUSD: decimal.NewFromInt(1000)}}
	svc := testenv.StartIngest(t, cfg)
	_, js := testenv.Connect(t, ns)
	res, err := loadgen.Publish(context.Background(), js, loadgen.NewGenerator(1, "deploy-"), loadgen.Options{Count: published})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != published {
		t.Fatalf("published %d events, want %d", res.Published, published)
	}
	return svc.MetricsAddr(), res
}

func httpGet(url string) ([]byte, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body, nil
}

// exposition is what a /metrics page holds: the families by name with their
// type, and for every sample name the label names and values seen.
type exposition struct {
	types  map[string]string
	labels map[string]map[string]map[string]bool // sample name → label → values
}

func parseExposition(t testing.TB, text string) exposition {
	t.Helper()
	e := exposition{types: map[string]string{}, labels: map[string]map[string]map[string]bool{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			e.types[f[2]] = f[3]
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			t.Fatalf("bad sample line %q", line)
		}
		name := line[:end]
		if e.labels[name] == nil {
			e.labels[name] = map[string]map[string]bool{}
		}
		if line[end] == '{' {
			ms, _, err := readMatchers(line, end)
			if err != nil {
				t.Fatalf("sample line %q: %v", line, err)
			}
			for _, m := range ms {
				if e.labels[name][m.Label] == nil {
					e.labels[name][m.Label] = map[string]bool{}
				}
				e.labels[name][m.Label][m.Value] = true
			}
		}
	}
	return e
}

// family returns the family a sample or selector name belongs to:
// x_bucket, x_sum and x_count are the histogram x.
func (e exposition) family(name string) (string, bool) {
	if _, ok := e.types[name]; ok {
		return name, true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		base := strings.TrimSuffix(name, suf)
		if typ := e.types[base]; base != name && (typ == "histogram" || typ == "summary" && suf != "_bucket") {
			return base, true
		}
	}
	return "", false
}

// Every metric a rule or a panel queries is one a running ingest exports,
// with the labels and label values it selects; the exposition passes
// promtool's lint; and a real Prometheus scrapes ingest, loads the rules and
// answers every dashboard query with data.
func TestIngestMetricsLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS, ClickHouse, ingest and Prometheus")
	}
	promtool := tool(t, "promtool")
	prometheus := tool(t, "prometheus")
	addr, _ := startIngest(t, "")
	prom := startPrometheus(t, prometheus, addr)

	// Wait for the events to be stored and the gate to have published the
	// per-service spend (refreshed at most every 10s).
	var text string
	testenv.Eventually(t, 30*time.Second, "ingest to store the events and export service spend", func() bool {
		body, err := httpGet("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		text = string(body)
		return strings.Contains(text, fmt.Sprintf("spendgate_ingest_events_total{result=\"inserted\"} %d\n", published)) &&
			strings.Contains(text, `spendgate_service_spend_usd{period="daily"`) &&
			strings.Contains(text, `spendgate_service_spend_usd{period="monthly"`)
	})
	exp := parseExposition(t, text)

	t.Run("names", func(t *testing.T) {
		checked := map[string]bool{}
		for _, e := range allExprs(t) {
			sels, err := selectors(e.expr)
			if err != nil {
				t.Fatalf("%s: %v", e.where, err)
			}
			if len(sels) == 0 {
				t.Errorf("%s: no metric in %q", e.where, e.expr)
			}
			for _, s := range sels {
				if s.Name == "up" { // Prometheus's own, per target
					continue
				}
				fam, ok := exp.family(s.Name)
				if !ok {
					t.Errorf("%s: %s is not exported by ingest", e.where, s.Name)
					continue
				}
				checked[fam] = true
				for _, m := range s.Matchers {
					if m.Label == "job" || m.Label == "instance" { // set by the scrape
						continue
					}
					values, ok := exp.labels[s.Name][m.Label]
					if !ok {
						t.Errorf("%s: %s has no label %s", e.where, s.Name, m.Label)
					} else if m.Op == "=" && !values[m.Value] {
						t.Errorf("%s: %s never has %s=%q (it has %v)", e.where, s.Name, m.Label, m.Value, keys(values))
					}
				}
			}
		}
		t.Logf("%d metric families of ingest are queried: %v", len(checked), keys(checked))
	})

	t.Run("promtool check metrics", func(t *testing.T) {
		out := run(t, ".", []byte(text), promtool, "check", "metrics")
		if strings.TrimSpace(out) != "" {
			t.Errorf("promtool check metrics:\n%s", out)
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		// The counter read back through the HTTP API, as scraped.
		q := `spendgate_ingest_events_total{job="` + ingestJob + `",result="inserted"}`
		testenv.Eventually(t, 30*time.Second, "Prometheus to scrape "+q+" = "+strconv.Itoa(published), func() bool {
			res, err := prom.query(q)
			return err == nil && len(res) == 1 && res[0].Value[1] == strconv.Itoa(published)
		})
		// Every dashboard query answers with data, labelled as its legend says.
		legendLabel := regexp.MustCompile(`{{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*}}`)
		var problems []string
		for deadline := time.Now().Add(20 * time.Second); ; {
			problems = problems[:0]
			for _, e := range dashboardExprs(t) {
				res, err := prom.query(grafanaVars.Replace(e.expr))
				if err != nil {
					t.Fatalf("%s: %v", e.where, err)
				}
				if len(res) == 0 {
					problems = append(problems, e.where+": no data for "+e.expr)
				}
				for _, m := range legendLabel.FindAllStringSubmatch(e.legend, -1) {
					for _, r := range res {
						if _, ok := r.Metric[m[1]]; !ok {
							problems = append(problems, fmt.Sprintf("%s: legend %q but %s gives %v", e.where, e.legend, e.expr, r.Metric))
							break
						}
					}
				}
			}
			if len(problems) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("dashboard queries after 20s:\n%s", strings.Join(problems, "\n"))
			}
			time.Sleep(250 * time.Millisecond)
		}
		// The rules load and evaluate without error.
		testenv.Eventually(t, 20*time.Second, "every rule to be evaluated", func() bool {
			rules, err := prom.rules()
			if err != nil {
				t.Fatal(err)
			}
			if len(rules) != len(ruleExprs(t)) {
				t.Fatalf("Prometheus loaded %d rules, want %d", len(rules), len(ruleExprs(t)))
			}
			for name, health := range rules {
				if health == "err" {
					t.Fatalf("rule %s: health err", name)
				}
				if health != "ok" {
					return false
				}
			}
			return true
		})
	})
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// promServer is a Prometheus server run by a test.
type promServer struct {
	base string
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// startPrometheus runs Debian's prometheus with its storage in a temporary
// folder, scraping target every second and evaluating rules.yml, until the
// test ends.
func startPrometheus(t *testing.T, bin, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
`, rules, ingestJob, target)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	p := &promServer{base: "http://" + listen}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := httpGet(p.base + "/-/ready"); err == nil {
			return p
		}
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready on %s after 20s:\n%s", listen, out.String())
		}
	}
}

// query runs an instant query; a query Prometheus rejects is an error.
func (p *promServer) query(q string) ([]promSample, error) {
	body, err := httpGet(p.base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, r.Error)
	}
	return r.Data.Result, nil
}

// rules returns every loaded rule's health by group/name.
func (p *promServer) rules() (map[string]string, error) {
	body, err := httpGet(p.base + "/api/v1/rules")
	if err != nil {
		return nil, err
	}
	var r struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range r.Data.Groups {
		for _, rule := range g.Rules {
			h := rule.Health
			if rule.LastError != "" {
				h = "err"
			}
			out[g.Name+"/"+rule.Name] = h
		}
	}
	return out, nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
