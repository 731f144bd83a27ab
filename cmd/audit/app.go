package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"github.com/spendgate/spendgate/internal/cli"
	"github.com/spendgate/spendgate/internal/config"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/gate"
	"github.com/spendgate/spendgate/internal/olap"
	"github.com/spf13/cobra"
)

// now is the clock and whoami the person; tests set them.
var (
	now    = time.Now
	whoami = who
)

// app holds the configuration and the connections a command opens lazily,
// so `gate check` never touches ClickHouse and `costs` never touches NATS.
type app struct {
	cfg    config.Config
	policy gate.Policy
	ch     *olap.Client
	broker *events.Broker
	store  *gate.Store
}

func (a *app) load(cmd *cobra.Command) error {
	cfg, err := cli.LoadConfig(cmd)
	if err != nil {
		return err
	}
	a.cfg = cfg
	a.policy, err = gate.NewPolicy(cfg)
	return err
}

func (a *app) close() {
	if a.ch != nil {
		a.ch.Close()
	}
	if a.broker != nil {
		a.broker.Close()
	}
}

func (a *app) clickhouse(ctx context.Context) (*olap.Client, error) {
	if a.ch != nil {
		return a.ch, nil
	}
	tc, err := a.cfg.ClickHouse.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("clickhouse %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	a.ch, err = olap.Open(ctx, olap.Options{Addr: a.cfg.ClickHouse.Addr, Database: a.cfg.ClickHouse.Database,
		User: a.cfg.ClickHouse.User, Password: a.cfg.ClickHouse.Password, TLS: tc, DialTimeout: 3 * time.Second})
	return a.ch, err
}

// gateStore connects to NATS (nats.url, or the embedded server of a running
// ingest on nats.listen). With create, the streams and buckets are created if
// ingest never ran, so an operator can set the gate before the first event.
func (a *app) gateStore(ctx context.Context, create bool) (*gate.Store, error) {
	if a.store != nil {
		return a.store, nil
	}
	nc := a.cfg.NATS
	if nc.URL == "" {
		nc.URL = "nats://" + nc.Listen
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	if a.broker, err = events.Open(ctx, nc, "", "spendgate-audit", nil); err != nil {
		return nil, err
	}
	if create {
		if err := events.EnsureStreams(ctx, a.broker.JS, a.cfg.NATS); err != nil {
			return nil, fmt.Errorf("nats at %s: %w", nc.URL, err)
		}
	}
	if a.store, err = gate.OpenStore(ctx, a.broker.JS, a.cfg.NATS.Replicas); err != nil {
		return nil, fmt.Errorf("nats at %s: %w", nc.URL, err)
	}
	return a.store, nil
}

// loadGate reads the gate's state; a missing COST_GATE stream (ingest never
// ran) reads as the initial state with no history.
func (a *app) loadGate(ctx context.Context) (gate.State, error) {
	s, err := a.gateStore(ctx, false)
	if err != nil {
		return gate.State{}, err
	}
	st, _, err := s.Load(ctx)
	return st, err
}

// who is the person behind a manual change: user@host.
func who() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// format checks --format against what the command can write.
func format(cmd *cobra.Command, allowed ...string) (string, error) {
	f, _ := cmd.Flags().GetString("format")
	for _, a := range allowed {
		if f == a {
			return f, nil
		}
	}
	return "", cli.Usagef("--format %q: %s takes %v", f, cmd.CommandPath(), allowed)
}

// output opens --output: "-" is standard output; a file is written
// atomically by the caller through audit.WriteFileAtomic.
func output(cmd *cobra.Command) string {
	o, _ := cmd.Flags().GetString("output")
	return o
}

// isTerminal reports whether w is a terminal (for the progress line).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
