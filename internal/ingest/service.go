package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spendgate/spendgate/internal/config"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/gate"
	"github.com/spendgate/spendgate/internal/olap"
)

// FaultPauseEnv names the fault hook used by crash tests: with it set to N,
// the worker stops after its Nth ClickHouse insert, before acking, prints
// FaultPausedLine on stderr and waits to be killed.
const (
	FaultPauseEnv   = "SPENDGATE_FAULT_PAUSE_AFTER_INSERT"
	FaultPausedLine = "FAULT: paused after insert, before ack"
)

// Service is the whole ingest process: NATS (embedded or not), ClickHouse,
// the worker and the HTTP endpoints.
type Service struct {
	cfg      config.Config
	log      *slog.Logger
	Broker   *events.Broker
	CH       *olap.Client
	Registry *prometheus.Registry
	Metrics  *Metrics
	cons     jetstream.Consumer
	worker   *Worker
	Gate     *gate.Evaluator
	GateDB   *gate.Store
	http     *http.Server
	ln       net.Listener
}

// New connects everything and prepares the streams, the consumer and the
// schema. Each error names what failed and where.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*Service, error) {
	s := &Service{cfg: cfg, log: log, Registry: prometheus.NewRegistry()}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	var err error
	s.Broker, err = events.Open(ctx, cfg.NATS, cfg.DataDir, "spendgate-ingest", log)
	if err != nil {
		return nil, err
	}
	if err := events.EnsureStreams(ctx, s.Broker.JS, cfg.NATS); err != nil {
		return nil, fmt.Errorf("nats at %s: %w", s.Broker.URL(), err)
	}
	s.cons, err = s.Broker.JS.CreateOrUpdateConsumer(ctx, events.StreamEvents,
		events.ConsumerConfig(cfg.Ingest.Consumer, cfg.Ingest.AckWait, cfg.Ingest.MaxAckPending))
	if err != nil {
		return nil, fmt.Errorf("nats at %s: consumer %s: %w", s.Broker.URL(), cfg.Ingest.Consumer, err)
	}
	tc, err := cfg.ClickHouse.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("clickhouse %w", err)
	}
	s.CH, err = olap.Open(ctx, olap.Options{
		Addr: cfg.ClickHouse.Addr, Database: cfg.ClickHouse.Database,
		User: cfg.ClickHouse.User, Password: cfg.ClickHouse.Password, TLS: tc, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if _, err := s.CH.Migrate(ctx); err != nil {
		return nil, err
	}
	s.Metrics = NewMetrics(s.Registry)
	policy, err := gate.NewPolicy(cfg)
	if err != nil {
		return nil, err
	}
	s.GateDB, err = gate.OpenStore(ctx, s.Broker.JS, cfg.NATS.Replicas)
	if err != nil {
		return nil, fmt.Errorf("nats at %s: %w", s.Broker.URL(), err)
	}
	s.Gate = gate.NewEvaluator(policy, s.CH, s.GateDB, gate.NewMetrics(s.Registry), log,
		gate.EvaluatorOptions{Interval: cfg.Gate.EvalInterval})
	opts := Options{
		BatchSize: cfg.Ingest.BatchSize, FlushInterval: cfg.Ingest.FlushInterval, AckWait: cfg.Ingest.AckWait,
		RetryMin: cfg.Ingest.RetryMin, RetryMax: cfg.Ingest.RetryMax, ShutdownGrace: cfg.Ingest.ShutdownGrace,
		AfterFlush: s.Gate.Trigger, Inserters: cfg.Ingest.Inserters,
	}
	if n, err := strconv.Atoi(os.Getenv(FaultPauseEnv)); err == nil && n > 0 {
		opts.AfterInsert = func(i int) {
			if i == n {
				fmt.Fprintln(os.Stderr, FaultPausedLine)
				select {}
			}
		}
	}
	s.worker = NewWorker(s.cons, s.Broker.JS, s.CH, s.Metrics, log, opts)

	s.ln, err = net.Listen("tcp", cfg.Metrics.Listen)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %s: %w", cfg.Metrics.Listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{Registry: s.Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", s.readyz)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ok = true
	return s, nil
}

// MetricsAddr is where /metrics, /healthz and /readyz are served.
func (s *Service) MetricsAddr() string { return s.ln.Addr().String() }

func (s *Service) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var problems []error
	if !s.Broker.NC.IsConnected() {
		problems = append(problems, fmt.Errorf("nats at %s: %s", s.Broker.URL(), s.Broker.NC.Status()))
	}
	if err := s.CH.Ping(ctx); err != nil {
		problems = append(problems, err)
	}
	if err := errors.Join(problems...); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Run serves until ctx ends, then shuts down in order: stop fetching, store
// and ack what is held, stop HTTP. It returns nil on a clean stop.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	httpErr := make(chan error, 1)
	go func() {
		if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			httpErr <- err
		}
	}()
	wctx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.pollConsumer(wctx)
	}()
	go func() {
		defer wg.Done()
		_ = s.Gate.Run(wctx)
	}()
	s.log.Info("ingest running", "nats", s.Broker.URL(), "clickhouse", s.CH.Addr(), "database", s.CH.Database(),
		"metrics", "http://"+s.MetricsAddr()+"/metrics", "consumer", s.cfg.Ingest.Consumer)
	werr := make(chan error, 1)
	go func() { werr <- s.worker.Run(wctx) }()
	var err error
	select {
	case err = <-werr:
	case err = <-httpErr:
		stopWorker()
		<-werr
	case <-ctx.Done():
		err = <-werr
	}
	stopWorker()
	wg.Wait()
	// Acks are fire-and-forget: make sure the server has the last ones.
	if ferr := s.Broker.NC.FlushTimeout(2 * time.Second); ferr != nil {
		s.log.Warn("flushing the last acks", "err", ferr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.http.Shutdown(sctx)
	s.log.Info("ingest stopped")
	return err
}

// pollConsumer keeps the consumer gauges fresh.
func (s *Service) pollConsumer(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		if info, err := s.cons.Info(ictx); err == nil {
			s.Metrics.Pending.Set(float64(info.NumPending))
			s.Metrics.AckPending.Set(float64(info.NumAckPending))
			s.Metrics.Redelivered.Set(float64(info.NumRedelivered))
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close releases connections; safe on a partly built Service.
func (s *Service) Close() {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.CH != nil {
		s.CH.Close()
	}
	if s.Broker != nil {
		s.Broker.Close()
	}
}
