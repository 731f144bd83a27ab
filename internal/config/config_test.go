package config_test

import (
	"errors"
	"os"
	"path/filepath"
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
	if def != ex {
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
