package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/spendgate/spendgate/internal/config"
	"github.com/spendgate/spendgate/internal/ingest"
)

// IngestConfig is the default configuration pointed at a test NATS server
// and ClickHouse database, with metrics on a free port, a 2s ack wait and
// short retry back-offs.
func IngestConfig(t testing.TB, natsURL, db string) config.Config {
	t.Helper()
	cfg, err := config.Load(config.New(), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATS.URL = natsURL
	cfg.ClickHouse.Addr = ClickHouseAddr()
	cfg.ClickHouse.Database = db
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Ingest.AckWait = 2 * time.Second
	cfg.Ingest.RetryMin = 20 * time.Millisecond
	cfg.Ingest.RetryMax = 200 * time.Millisecond
	return cfg
}

// StartIngest runs an ingest service in-process until the test ends, when
// it is stopped as SIGTERM would and must return nil.
func StartIngest(t testing.TB, cfg config.Config) *ingest.Service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := ingest.New(ctx, cfg, Logger(t))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingest Run: %v", err)
		}
		s.Close()
	})
	return s
}
