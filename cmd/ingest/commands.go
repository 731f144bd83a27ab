package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spendgate/spendgate/internal/bench"
	"github.com/spendgate/spendgate/internal/cli"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/ingest"
	"github.com/spendgate/spendgate/internal/loadgen"
	"github.com/spf13/cobra"
)

// addCommonFlags adds --config and the flags bound to configuration keys.
func addCommonFlags(c *cobra.Command) {
	f := c.Flags()
	cli.AddConnectionFlags(f, "start an embedded JetStream server on nats.listen")
	f.String("nats-listen", "", "embedded NATS client address (nats.listen, default 127.0.0.1:4222)")
	f.String("log-level", "", "debug, info, warn or error (log.level)")
	f.String("log-format", "", "text or json (log.format)")
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "ingest",
		Short: "Consume cost events from NATS JetStream into ClickHouse",
		Long: `ingest consumes cost events (costs.events.<service>) from NATS JetStream into
ClickHouse, acking each only once stored, dead-letters invalid ones to
costs.dlq.<reason>, and serves /metrics, /healthz and /readyz.
With nats.url empty it starts an embedded JetStream server on nats.listen.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := cli.LoadConfig(cmd)
			if err != nil {
				return err
			}
			log := cli.NewLogger(os.Stderr, cfg.Log)
			s, err := ingest.New(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer s.Close()
			return s.Run(cmd.Context())
		},
	}
	addCommonFlags(root)
	f := root.Flags()
	f.String("data-dir", "", "where the embedded NATS server keeps its store (data_dir, default .data/ingest)")
	f.String("metrics-listen", "", "address of /metrics, /healthz, /readyz (metrics.listen, default 127.0.0.1:9464)")
	f.Int("ingest-batch-size", 0, "events per ClickHouse insert at most (ingest.batch_size)")
	f.Duration("ingest-flush-interval", 0, "longest wait before a partial batch is inserted (ingest.flush_interval)")
	root.AddCommand(publishCmd(), benchCmd())
	return root
}

func publishCmd() *cobra.Command {
	var count int
	var rate float64
	var seed uint64
	var prefix string
	c := &cobra.Command{
		Use:   "publish",
		Short: "Publish synthetic cost events (openai, sendgrid, aws…) and print their exact total",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if count < 0 || rate < 0 {
				return cli.Usagef("--count and --rate must be >= 0")
			}
			cfg, err := cli.LoadConfig(cmd)
			if err != nil {
				return err
			}
			if cfg.NATS.URL == "" {
				cfg.NATS.URL = "nats://" + cfg.NATS.Listen // the embedded server of a running ingest
			}
			b, err := events.Open(cmd.Context(), cfg.NATS, "", "spendgate-publish", nil)
			if err != nil {
				return err
			}
			defer b.Close()
			if prefix == "" {
				prefix = fmt.Sprintf("synth-%d-", time.Now().UnixNano())
			}
			res, err := loadgen.Publish(cmd.Context(), b.JS, loadgen.NewGenerator(seed, prefix), loadgen.Options{Count: count, Rate: rate})
			fmt.Fprintf(cmd.OutOrStdout(), "published %d events, total_usd %s, in %s\n",
				res.Published, res.Total.StringFixed(events.CostScale), res.Elapsed.Round(time.Millisecond))
			return err
		},
	}
	addCommonFlags(c)
	c.Flags().IntVar(&count, "count", 1000, "events to publish")
	c.Flags().Float64Var(&rate, "rate", 0, "events per second (0: as fast as acked)")
	c.Flags().Uint64Var(&seed, "seed", 1, "random seed: the same seed gives the same costs")
	c.Flags().StringVar(&prefix, "id-prefix", "", "event_id prefix (default synth-<nanotime>-)")
	return c
}

func benchCmd() *cobra.Command {
	var o bench.Options
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure: broker limit vs ingest end to end into ClickHouse, and ingest's peak RSS",
		Long: `bench starts its own JetStream server, pre-fills --events cost events, then
measures (a) a bare pull consumer that only acks (the broker's limit) and (b)
this ingest binary end to end into a fresh ClickHouse database, and prints both
rates, their ratio and ingest's peak RSS; then the gate's reaction time under
load, and audit's latency at each of --audit-sizes stored events. A phase with
a zero count is skipped. Run it alone on the machine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Events < 0 || o.GateCrossings < 0 || o.GateLoad <= 0 {
				return cli.Usagef("--events and --gate-crossings must be >= 0, --gate-load > 0")
			}
			sizes := o.AuditSizes[:0]
			for _, n := range o.AuditSizes {
				if n < 0 {
					return cli.Usagef("--audit-sizes must be >= 0 (0 skips)")
				}
				if n > 0 {
					sizes = append(sizes, n)
				}
			}
			o.AuditSizes = sizes
			cfg, err := cli.LoadConfig(cmd)
			if err != nil {
				return err
			}
			if o.Binary, err = os.Executable(); err != nil {
				return err
			}
			o.ClickHouse, o.Out = cfg.ClickHouse, cmd.OutOrStdout()
			_, err = bench.Run(cmd.Context(), o)
			return err
		},
	}
	addCommonFlags(c)
	c.Flags().IntVar(&o.Events, "events", 1_000_000, "events to pre-fill and consume")
	c.Flags().IntVar(&o.BatchSize, "batch-size", 0, "ingest.batch_size for the run (default: the configured one)")
	c.Flags().DurationVar(&o.Timeout, "timeout", 5*time.Minute, "limit for each phase")
	c.Flags().BoolVar(&o.Keep, "keep", false, "keep the bench's ClickHouse databases")
	c.Flags().IntVar(&o.GateCrossings, "gate-crossings", 20, "threshold crossings to time the gate's reaction over (0 skips)")
	c.Flags().IntVar(&o.GateLoad, "gate-load", 5000, "background events/s while timing the gate")
	c.Flags().IntSliceVar(&o.AuditSizes, "audit-sizes", []int{100_000, 10_000_000}, "stored events to time audit summary and costs --period month at (0 skips)")
	return c
}
