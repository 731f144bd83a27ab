package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/spendgate/spendgate/internal/config"
)

// The example file in the repository lists every key with its default.
func TestExampleFileIsTheDefaults(t *testing.T) {
	def, err := config.Load(config.New(), "")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := config.Load(config.New(), filepath.Join("..", "..", "spendgate.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(def, ex) {
		t.Fatalf("spendgate.example.yaml differs from the defaults:\n file %+v\n code %+v", ex, def)
	}
}

func TestEnvironmentOverridesFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "spendgate.yaml")
	if err := os.WriteFile(file, []byte("clickhouse:\n  addr: file:9000\ningest:\n  flush_interval: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SPENDGATE_CLICKHOUSE_ADDR", "env:9000")
	c, err := config.Load(config.New(), file)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClickHouse.Addr != "env:9000" || c.Ingest.FlushInterval != time.Second {
		t.Fatalf("addr=%q flush=%s, want env:9000 and 1s", c.ClickHouse.Addr, c.Ingest.FlushInterval)
	}
}

func TestMisspeltKeyIsAnError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "spendgate.yaml")
	if err := os.WriteFile(file, []byte("ingest:\n  batchsize: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(config.New(), file)
	if !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid for a misspelt key", err)
	}
}

func TestValidate(t *testing.T) {
	c, err := config.Load(config.New(), "")
	if err != nil {
		t.Fatal(err)
	}
	c.Ingest.BatchSize = 0
	c.Log.Level = "loud"
	if err := c.Validate(); !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("Validate = %v, want ErrInvalid", err)
	}
}

func TestMoneyIsExact(t *testing.T) {
	file := filepath.Join(t.TempDir(), "spendgate.yaml")
	yaml := `budgets:
  timezone: Asia/Kolkata
  daily_usd: 0.1
  monthly_usd: "1234.123456789"
  scoped:
    - {name: openai-daily, service: openai, period: day, limit_usd: 20.3}
gate:
  critical_operations:
    sendgrid: [send_email]
    aws: ["*"]
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(config.New(), file)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Budgets.DailyUSD.String(); got != "0.1" {
		t.Fatalf("daily_usd = %s, want exactly 0.1", got)
	}
	if got := c.Budgets.MonthlyUSD.String(); got != "1234.123456789" {
		t.Fatalf("monthly_usd = %s", got)
	}
	if len(c.Budgets.Scoped) != 1 || c.Budgets.Scoped[0].LimitUSD.String() != "20.3" || c.Budgets.Scoped[0].Service != "openai" {
		t.Fatalf("scoped = %+v", c.Budgets.Scoped)
	}
	if got := c.Gate.CriticalOperations["aws"]; len(got) != 1 || got[0] != "*" {
		t.Fatalf("critical_operations = %v", c.Gate.CriticalOperations)
	}
	t.Setenv("SPENDGATE_BUDGETS_DAILY_USD", "12.005")
	c, err = config.Load(config.New(), file)
	if err != nil || c.Budgets.DailyUSD.String() != "12.005" {
		t.Fatalf("env daily_usd = %v, %v", c.Budgets.DailyUSD, err)
	}
}
