package ingest

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spendgate/spendgate/internal/events"
)

// Results of an event, the label of spendgate_ingest_events_total.
const (
	ResultInserted  = "inserted"
	ResultDuplicate = "duplicate"
	ResultRejected  = "rejected"
)

// Metrics is what the worker exports on /metrics.
type Metrics struct {
	Events        *prometheus.CounterVec
	DeadLetters   *prometheus.CounterVec
	UnknownFields prometheus.Counter
	InsertErrors  prometheus.Counter
	BatchEvents   prometheus.Histogram
	FlushSeconds  prometheus.Histogram
	DelaySeconds  prometheus.Histogram
	LastInsert    prometheus.Gauge
	Pending       prometheus.Gauge
	AckPending    prometheus.Gauge
	Redelivered   prometheus.Gauge
}

// NewMetrics creates the worker's metrics and registers them, with the Go and
// process collectors and build info, on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "spendgate", Subsystem: "ingest", Name: "events_total",
			Help: "Cost events handled, by result: inserted into ClickHouse, duplicate (already stored, not counted again) or rejected (dead-lettered).",
		}, []string{"result"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "spendgate", Subsystem: "ingest", Name: "dead_letters_total",
			Help: "Cost events published to COST_DLQ, by reason.",
		}, []string{"reason"}),
		UnknownFields: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "spendgate", Subsystem: "ingest", Name: "unknown_fields_total",
			Help: "Top-level event fields ignored because the contract does not know them.",
		}),
		InsertErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "spendgate", Subsystem: "ingest", Name: "insert_errors_total",
			Help: "Failed ClickHouse batch inserts (each retried; nothing acked meanwhile).",
		}),
		BatchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "spendgate", Subsystem: "ingest", Name: "batch_events",
			Help:    "Messages per flush (valid and rejected).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		FlushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "spendgate", Subsystem: "ingest", Name: "flush_duration_seconds",
			Help:    "Time to store a batch (dead letters, duplicate check, insert, retries) until it is acked.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		DelaySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "spendgate", Subsystem: "ingest", Name: "delay_seconds",
			Help:    "End-to-end delay from an event's ts to its row being stored.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}),
		LastInsert: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "spendgate", Subsystem: "ingest", Name: "last_insert_timestamp_seconds",
			Help: "Unix time of the last successful ClickHouse insert.",
		}),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "spendgate", Subsystem: "ingest", Name: "consumer_pending_messages",
			Help: "Messages in COST_EVENTS not yet delivered to the ingest consumer.",
		}),
		AckPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "spendgate", Subsystem: "ingest", Name: "consumer_ack_pending_messages",
			Help: "Messages delivered to ingest workers and not yet acked.",
		}),
		Redelivered: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "spendgate", Subsystem: "ingest", Name: "consumer_redelivered_messages",
			Help: "Messages delivered more than once and not yet acked.",
		}),
	}
	for _, r := range []string{ResultInserted, ResultDuplicate, ResultRejected} {
		m.Events.WithLabelValues(r)
	}
	for _, r := range events.Reasons {
		m.DeadLetters.WithLabelValues(string(r))
	}
	version := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "spendgate", Name: "build_info", Help: "Build of the running binary; always 1.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	reg.MustRegister(m.Events, m.DeadLetters, m.UnknownFields, m.InsertErrors, m.BatchEvents,
		m.FlushSeconds, m.DelaySeconds, m.LastInsert, m.Pending, m.AckPending, m.Redelivered, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
