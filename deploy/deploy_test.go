// Package deploy_test checks the deployment files: compose.yaml (with
// docker-compose), the Prometheus configuration and alert rules (with
// promtool), the Grafana provisioning and dashboard, and, against a real
// ingest service and a real Prometheus server, that every metric the rules
// and the dashboard query is one ingest exports.
//
// The tools come from scripts/tools.sh. A missing tool fails the test when
// CI is set and skips it otherwise.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spendgate/spendgate/internal/config"
	"go.yaml.in/yaml/v3"
)

const (
	root           = ".."
	composeFile    = "../compose.yaml"
	promDir        = "prometheus"
	rulesFile      = "prometheus/rules.yml"
	rulesTestFile  = "prometheus/rules_test.yml"
	promConfigFile = "prometheus/prometheus.yml"
	dashboardFile  = "grafana/dashboards/spendgate.json"
	datasourceFile = "grafana/provisioning/datasources/prometheus.yml"
	providerFile   = "grafana/provisioning/dashboards/spendgate.yml"
	ingestJob      = "spendgate-ingest"
)

// tool finds a command the test needs: it fails when CI is set and the tool
// is missing, and skips otherwise.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s is needed: %v (scripts/tools.sh installs it)", name, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// run runs a tool in dir with stdin and fails the test, printing its output,
// unless it exits 0. It returns the combined output.
func run(t testing.TB, dir string, stdin []byte, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool(t, name), args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

func readYAML(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// compose is the part of compose.yaml the tests look at.
type compose struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       map[string]string `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// docker-compose (Debian's v1, which reads the Compose specification without
// a `version:` key) validates the file: schema, references, interpolation.
// `docker compose` (v2) validates it too when it is installed.
func TestComposeConfig(t *testing.T) {
	out := run(t, root, nil, "docker-compose", "-f", "compose.yaml", "config", "-q")
	if strings.TrimSpace(out) != "" {
		t.Errorf("docker-compose config -q printed warnings:\n%s", out)
	}
	if docker, err := exec.LookPath("docker"); err == nil {
		if exec.Command(docker, "compose", "version").Run() == nil {
			run(t, root, nil, "docker", "compose", "-f", "compose.yaml", "config", "-q")
		} else {
			t.Log("docker compose (v2) is not installed; validated with docker-compose only")
		}
	}
}

// The stack's shape: every service has a health check, the start order
// waits on health, only the ports a user needs are published, data is on
// volumes, and ingest's environment names real configuration keys.
func TestComposeStack(t *testing.T) {
	var c compose
	readYAML(t, composeFile, &c)
	var names []string
	for n := range c.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	if want := []string{"clickhouse", "grafana", "ingest", "nats", "prometheus"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	published := map[string]bool{}
	for name, s := range c.Services {
		if len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD" {
			t.Errorf("%s: healthcheck.test %q, want an exec-form CMD", name, s.Healthcheck.Test)
		}
		if (s.Image == "" || strings.HasSuffix(s.Image, ":latest") || !strings.Contains(s.Image, ":")) && s.Build == nil {
			t.Errorf("%s: image %q should be pinned to a version", name, s.Image)
		}
		for _, p := range s.Ports {
			parts := strings.Split(p, ":")
			published[parts[len(parts)-1]] = true
			if !strings.HasPrefix(p, "${SPENDGATE_PUBLISH_HOST:-127.0.0.1}:") {
				t.Errorf("%s: port %q should bind to ${SPENDGATE_PUBLISH_HOST:-127.0.0.1}", name, p)
			}
		}
		for _, v := range s.Volumes {
			src := strings.Split(v, ":")[0]
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("%s: bind mount %s: %v", name, v, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s: volume %s is not declared", name, src)
			}
		}
	}
	for p := range published {
		if !slices.Contains([]string{"4222", "9464", "9090", "3000"}, p) {
			t.Errorf("port %s is published; only NATS 4222, ingest 9464, Prometheus 9090 and Grafana 3000 should be", p)
		}
	}
	for _, dep := range []struct{ svc, on, cond string }{
		{"ingest", "nats", "service_healthy"},
		{"ingest", "clickhouse", "service_healthy"},
		{"prometheus", "ingest", "service_started"},
		{"grafana", "prometheus", "service_healthy"},
	} {
		if got := c.Services[dep.svc].DependsOn[dep.on].Condition; got != dep.cond {
			t.Errorf("%s depends_on %s: condition %q, want %q", dep.svc, dep.on, got, dep.cond)
		}
	}
	for svc, mount := range map[string]string{"nats": ":/data", "clickhouse": ":/var/lib/clickhouse",
		"prometheus": ":/prometheus", "grafana": ":/var/lib/grafana"} {
		if !slices.ContainsFunc(c.Services[svc].Volumes, func(v string) bool { return strings.HasSuffix(v, mount) }) {
			t.Errorf("%s: no volume on %s", svc, mount[1:])
		}
	}
	if !slices.Contains(c.Services["nats"].Command, "-js") {
		t.Errorf("nats command %q does not enable JetStream", c.Services["nats"].Command)
	}

	// ingest: built here, configured through SPENDGATE_* keys that exist.
	ing := c.Services["ingest"]
	if ing.Build["context"] != "." {
		t.Errorf("ingest build context %q, want .", ing.Build["context"])
	}
	keys := map[string]string{}
	for k := range config.Defaults {
		keys["SPENDGATE_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = k
	}
	for env := range ing.Environment {
		if _, ok := keys[env]; !ok {
			t.Errorf("ingest environment %s is no configuration key", env)
		}
	}
	for env, want := range map[string]string{
		"SPENDGATE_NATS_URL":        "nats://nats:4222",
		"SPENDGATE_CLICKHOUSE_ADDR": "clickhouse:9000",
		"SPENDGATE_METRICS_LISTEN":  "0.0.0.0:9464",
	} {
		if got := ing.Environment[env]; got != want {
			t.Errorf("ingest %s = %q, want %q", env, got, want)
		}
	}
	if got := ing.Healthcheck.Test; len(got) < 2 || got[1] != "/usr/local/bin/healthcheck" {
		t.Errorf("ingest healthcheck %q, want the image's /usr/local/bin/healthcheck", got)
	}

	// The Dockerfile builds what compose runs: ./cmd/... (ingest, and audit
	// once it exists) and the health probe, static, as a non-root user.
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "go build", "-o /out/ ./cmd/... ./deploy/healthcheck",
		"COPY --from=build /out/ /usr/local/bin/", "USER nonroot", `CMD ["ingest"]`, "EXPOSE 9464"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}

	// Grafana: the home dashboard and the provisioning are the repo's files.
	gf := c.Services["grafana"]
	home := gf.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if home != "/etc/grafana/dashboards/"+filepath.Base(dashboardFile) {
		t.Errorf("grafana home dashboard %q is not the mounted %s", home, dashboardFile)
	}
	if !slices.Contains(gf.Volumes, "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro") ||
		!slices.Contains(gf.Volumes, "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro") {
		t.Errorf("grafana volumes %q do not mount deploy/grafana", gf.Volumes)
	}
	if !slices.Contains(c.Services["prometheus"].Volumes, "./deploy/prometheus:/etc/prometheus:ro") {
		t.Errorf("prometheus volumes %q do not mount deploy/prometheus", c.Services["prometheus"].Volumes)
	}
}

// promConfig is the part of prometheus.yml the tests look at.
type promConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName      string `yaml:"job_name"`
		DNSSDConfigs []struct {
			Names []string `yaml:"names"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
	} `yaml:"scrape_configs"`
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// promtool checks the configuration and the rules, and runs the rules' unit
// tests; every alert must have a test in which it fires.
func TestPrometheusRules(t *testing.T) {
	run(t, promDir, nil, "promtool", "check", "config", filepath.Base(promConfigFile))
	run(t, promDir, nil, "promtool", "check", "rules", filepath.Base(rulesFile))
	out := run(t, promDir, nil, "promtool", "test", "rules", filepath.Base(rulesTestFile))
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules:\n%s", out)
	}

	var rules ruleFile
	readYAML(t, rulesFile, &rules)
	var tests ruleTests
	readYAML(t, rulesTestFile, &tests)
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !fires[r.Alert] {
				t.Errorf("alert %s has no test in %s in which it fires", r.Alert, rulesTestFile)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s needs a summary and a description", r.Alert)
			}
		}
	}
	for _, want := range []string{"SpendgateBudgetWarning", "SpendgateBudgetCritical", "SpendgateGateActive",
		"SpendgateIngestStalled", "SpendgateDeadLettersRising", "SpendgateWorkerDown"} {
		if !fires[want] {
			t.Errorf("no firing test of %s", want)
		}
	}
	t.Logf("%d alerts, each with a firing test", n)
}

// Rules and dashboard select the scrape job prometheus.yml defines, on the
// port ingest listens on in compose.
func TestJobAndPort(t *testing.T) {
	var pc promConfig
	readYAML(t, promConfigFile, &pc)
	if len(pc.ScrapeConfigs) != 1 || pc.ScrapeConfigs[0].JobName != ingestJob {
		t.Fatalf("scrape_configs %+v, want one job %s", pc.ScrapeConfigs, ingestJob)
	}
	sd := pc.ScrapeConfigs[0].DNSSDConfigs
	if len(sd) != 1 || !slices.Equal(sd[0].Names, []string{"ingest"}) || sd[0].Port != 9464 {
		t.Errorf("dns_sd_configs %+v, want the compose service ingest on 9464", sd)
	}
	if !slices.Equal(pc.RuleFiles, []string{filepath.Base(rulesFile)}) {
		t.Errorf("rule_files %q, want %s", pc.RuleFiles, filepath.Base(rulesFile))
	}
	for _, e := range allExprs(t) {
		sels, err := selectors(e.expr)
		if err != nil {
			t.Fatalf("%s: %v", e.where, err)
		}
		for _, s := range sels {
			for _, m := range s.Matchers {
				if m.Label == "job" && (m.Op != "=" || m.Value != ingestJob) {
					t.Errorf("%s: %s selects job %s%q, want =%q", e.where, s, m.Op, m.Value, ingestJob)
				}
			}
		}
	}
}

// expr is one PromQL expression and where it comes from.
type expr struct {
	where, expr string
	legend      string // a dashboard target's legendFormat
}

// ruleExprs lists the expressions of rules.yml.
func ruleExprs(t testing.TB) []expr {
	var rules ruleFile
	readYAML(t, rulesFile, &rules)
	var out []expr
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out = append(out, expr{where: rulesFile + ": " + r.Alert + r.Record, expr: r.Expr})
		}
	}
	return out
}

// dashboard reads the dashboard JSON.
func dashboard(t testing.TB) map[string]any {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// dashboardExprs lists every "expr" in the dashboard, wherever it is nested.
func dashboardExprs(t testing.TB) []expr {
	var out []expr
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				path += "/" + title
			}
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					legend, _ := v["legendFormat"].(string)
					out = append(out, expr{where: dashboardFile + path, expr: s, legend: legend})
				} else {
					walk(path, x)
				}
			}
		case []any:
			for _, x := range v {
				walk(path, x)
			}
		}
	}
	walk("", dashboard(t))
	sort.Slice(out, func(i, j int) bool { return out[i].where+out[i].expr < out[j].where+out[j].expr })
	return out
}

func allExprs(t testing.TB) []expr { return append(ruleExprs(t), dashboardExprs(t)...) }

// grafanaVars are the variables the dashboard's queries may use, with the
// value a test gives them against a Prometheus scraping every second.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "5s", "$__range", "1h")

// The dashboard is valid JSON Grafana can provision: a uid, panels with
// unique ids that do not overlap on the 24-column grid, each query with an
// expression on the dashboard's Prometheus data source, and it covers what
// the issue asks for.
func TestDashboard(t *testing.T) {
	d := dashboard(t)
	if d["uid"] != "spendgate" || d["title"] == "" {
		t.Errorf("uid %v title %v", d["uid"], d["title"])
	}
	panels, _ := d["panels"].([]any)
	if len(panels) < 10 {
		t.Fatalf("%d panels", len(panels))
	}
	ids := map[float64]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range panels {
		p := p.(map[string]any)
		title, _ := p["title"].(string)
		id, _ := p["id"].(float64)
		if id == 0 || ids[id] {
			t.Errorf("panel %q: id %v missing or not unique", title, p["id"])
		}
		ids[id] = true
		g, _ := p["gridPos"].(map[string]any)
		x, y, w, h := int(g["x"].(float64)), int(g["y"].(float64)), int(g["w"].(float64)), int(g["h"].(float64))
		if w <= 0 || h <= 0 || x < 0 || x+w > 24 {
			t.Errorf("panel %q: gridPos %v outside the 24 columns", title, g)
		}
		for i := x; i < x+w; i++ {
			for j := y; j < y+h; j++ {
				if other, ok := used[cell{i, j}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, title, i, j)
				}
				used[cell{i, j}] = title
			}
		}
		if p["type"] == "row" {
			continue
		}
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q has no query", title)
		}
		for _, tg := range targets {
			tg := tg.(map[string]any)
			if e, _ := tg["expr"].(string); strings.TrimSpace(e) == "" {
				t.Errorf("panel %q: a target without expr", title)
			}
			ds, _ := tg["datasource"].(map[string]any)
			if ds["type"] != "prometheus" || ds["uid"] != "${datasource}" {
				t.Errorf("panel %q: datasource %v, want the ${datasource} variable", title, ds)
			}
		}
	}
	all := ""
	for _, e := range dashboardExprs(t) {
		all += e.expr + "\n"
		if rest := grafanaVars.Replace(e.expr); strings.Contains(rest, "$") {
			t.Errorf("%s: unknown Grafana variable in %q", e.where, e.expr)
		}
	}
	for _, want := range []string{`spendgate_spend_usd{period="daily"}`, `spendgate_spend_usd{period="monthly"}`,
		"spendgate_budget_usd", "spendgate_budget_utilization_ratio", "spendgate_service_spend_usd",
		"spendgate_gate_active", "spendgate_gate_auto_active", "spendgate_ingest_events_total",
		"spendgate_ingest_delay_seconds_bucket", "spendgate_ingest_dead_letters_total",
		"spendgate_ingest_flush_duration_seconds_bucket", "spendgate_ingest_consumer_pending_messages"} {
		if !strings.Contains(all, want) {
			t.Errorf("the dashboard does not query %s", want)
		}
	}

	// Provisioning: the data source the dashboard defaults to, and the
	// folder compose mounts the dashboard into.
	var ds struct {
		Datasources []struct {
			Name, UID, Type, URL string
			IsDefault            bool `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	readYAML(t, datasourceFile, &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" || !ds.Datasources[0].IsDefault {
		t.Errorf("datasources %+v, want the default prometheus at http://prometheus:9090", ds.Datasources)
	}
	var prov struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		} `yaml:"providers"`
	}
	readYAML(t, providerFile, &prov)
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path != "/etc/grafana/dashboards" {
		t.Errorf("dashboard providers %+v, want a file provider on /etc/grafana/dashboards", prov.Providers)
	}
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
