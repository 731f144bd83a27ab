// Package testenv starts and connects the real servers tests run against:
// an in-process NATS JetStream server per test, and a fresh database per test
// on the ClickHouse server that scripts/clickhouse.sh keeps running.
package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spendgate/spendgate/internal/config"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/olap"
)

// ClickHouseAddr is where tests find ClickHouse: SPENDGATE_CLICKHOUSE_ADDR or
// 127.0.0.1:9000.
func ClickHouseAddr() string {
	if a := os.Getenv("SPENDGATE_CLICKHOUSE_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:9000"
}

var dbSeq atomic.Int64

// Database returns a unique database name for t (not yet created).
func Database(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("sgtest_%s_%d_%d", name, os.Getpid(), dbSeq.Add(1))
}

// ClickHouse connects to the test server with a fresh, migrated database
// that is dropped when the test ends. Without a reachable server the test
// fails when CI is set and is skipped otherwise, saying how to start one.
func ClickHouse(t testing.TB) *olap.Client {
	t.Helper()
	return ClickHouseDB(t, Database(t))
}

// ClickHouseDB is ClickHouse with a chosen database name (e.g. one shared
// with a subprocess).
func ClickHouseDB(t testing.TB, db string) *olap.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := olap.Open(ctx, olap.Options{Addr: ClickHouseAddr(), Database: db, Logger: Logger(t)})
	if err != nil {
		msg := fmt.Sprintf("ClickHouse is needed: %v (start one with scripts/clickhouse.sh)", err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if _, err := c.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.DropDatabase(ctx); err != nil {
			t.Errorf("drop database %s: %v", db, err)
		}
		c.Close()
	})
	return c
}

// NATS starts an in-process JetStream server on a free loopback port with
// its store in a temporary folder, shut down when the test ends.
func NATS(t testing.TB) *server.Server {
	t.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	ns := natstest.RunServer(&opts)
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// Connect returns a client connection and JetStream context for ns.
func Connect(t testing.TB, ns *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatalf("connect %s: %v", ns.ClientURL(), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Logger writes to the test log when -v is given, else discards.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Eventually polls cond every 20ms until it is true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// JetStream starts a NATS server (see NATS) with the contract's streams
// created as ingest creates them, and returns it with a JetStream client.
func JetStream(t testing.TB) (*server.Server, jetstream.JetStream) {
	t.Helper()
	ns := NATS(t)
	_, js := Connect(t, ns)
	cfg, err := config.Load(config.New(), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := events.EnsureStreams(ctx, js, cfg.NATS); err != nil {
		t.Fatalf("streams: %v", err)
	}
	return ns, js
}
