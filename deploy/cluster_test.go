package deploy_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/spendgate/spendgate/internal/olap"
	"github.com/spendgate/spendgate/internal/period"
	"github.com/spendgate/spendgate/internal/testenv"
)

const opsDoc = "../docs/operations.md"

// clusterDDL is the cluster variant of the schema documented in
// docs/operations.md, split into statements.
func clusterDDL(t testing.TB) []string {
	t.Helper()
	doc, err := os.ReadFile(opsDoc)
	if err != nil {
		t.Fatal(err)
	}
	const open = "```sql\nCREATE DATABASE IF NOT EXISTS spendgate ON CLUSTER spendgate;"
	i := strings.Index(string(doc), open)
	if i < 0 {
		t.Fatalf("%s has no cluster DDL block starting %q", opsDoc, open)
	}
	block := string(doc[i+len("```sql\n"):])
	block = block[:strings.Index(block, "```")]
	var stmts []string
	for _, st := range strings.Split(block, ";\n") {
		var lines []string
		for _, l := range strings.Split(st, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		if st := strings.TrimSpace(strings.Join(lines, "\n")); st != "" {
			stmts = append(stmts, strings.TrimSuffix(st, ";"))
		}
	}
	return stmts
}

// The documented cluster DDL, made runnable on the one test server: the
// replicated engines become their plain forms, ON CLUSTER goes, and the
// Distributed tables use the server's single-shard loopback cluster. A real
// ingest then finds every table it expects (its migrations add nothing),
// inserts through the Distributed table, and the raw table and the rollup
// read through the Distributed tables add up to what was published.
func TestClusterDDL(t *testing.T) {
	stmts := clusterDDL(t)
	if len(stmts) != 6 {
		t.Fatalf("%d statements in the cluster DDL, want 6", len(stmts))
	}
	for _, st := range stmts {
		if !strings.Contains(st, " ON CLUSTER spendgate") {
			t.Errorf("statement without ON CLUSTER: %.60s…", st)
		}
	}
	all := strings.Join(stmts, "\n")
	for _, want := range []string{"ReplicatedMergeTree(", "ReplicatedSummingMergeTree(", "Distributed(spendgate, spendgate, cost_events_local, cityHash64(event_id))",
		"MATERIALIZED VIEW IF NOT EXISTS spendgate.cost_rollup_15m_mv", "TO spendgate.cost_rollup_15m_local", "FROM spendgate.cost_events_local"} {
		if !strings.Contains(all, want) {
			t.Errorf("the cluster DDL lacks %q", want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{testenv.ClickHouseAddr()}, DialTimeout: 5 * time.Second})
	if err == nil {
		err = conn.Ping(ctx)
	}
	if err != nil {
		msg := fmt.Sprintf("ClickHouse is needed: %v (start one with scripts/clickhouse.sh)", err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { conn.Close() })
	const cluster = "test_shard_localhost" // in the packaged config.xml: one shard, localhost:9000
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.clusters WHERE cluster = ? AND port = 9000", cluster).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 || !strings.HasSuffix(testenv.ClickHouseAddr(), ":9000") {
		t.Skipf("the test server has no cluster %s on the test address's port 9000", cluster)
	}

	db := testenv.Database(t)
	local := strings.NewReplacer(" ON CLUSTER spendgate", "", "spendgate.", db+".", "EXISTS spendgate", "EXISTS "+db,
		"Distributed(spendgate, spendgate,", "Distributed("+cluster+", "+db+",")
	replicated := regexp.MustCompile(`Replicated(\w*MergeTree)\('[^']*', '\{replica\}'\)`)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
	})
	for _, st := range stmts {
		st = replicated.ReplaceAllString(local.Replace(st), "$1")
		if err := conn.Exec(ctx, st); err != nil {
			t.Fatalf("%s\n%v", st, err)
		}
	}

	_, res := startIngest(t, db)
	ch, err := olap.Open(ctx, olap.Options{Addr: testenv.ClickHouseAddr(), Database: db, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	ever := period.Range{Start: time.Unix(0, 0), End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	testenv.Eventually(t, 30*time.Second, "the events stored through the Distributed tables", func() bool {
		raw, err1 := ch.RawTotal(ctx, ever)
		roll, err2 := ch.Total(ctx, ever, olap.Filter{})
		return err1 == nil && err2 == nil && raw.Events == uint64(res.Published) && raw.CostUSD.Equal(res.Total) &&
			roll.Events == uint64(res.Published) && roll.CostUSD.Equal(res.Total)
	})

	rows, err := conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ? ORDER BY name", db)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name+" "+engine)
	}
	rows.Close()
	want := []string{"cost_events Distributed", "cost_events_local MergeTree", "cost_rollup_15m Distributed",
		"cost_rollup_15m_local SummingMergeTree", "cost_rollup_15m_mv MaterializedView", "schema_migrations MergeTree"}
	if !slices.Equal(tables, want) {
		t.Errorf("tables after ingest started:\n got %q\nwant %q", tables, want)
	}
}
