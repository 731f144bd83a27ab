// Package bench measures spendgate on this machine, in one run: it pre-fills
// a stream, measures the broker's own limit with a bare pull consumer that
// only acks, then runs the real ingest binary end to end into ClickHouse and
// reports both rates, their ratio and ingest's peak RSS.
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spendgate/spendgate/internal/config"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/loadgen"
	"github.com/spendgate/spendgate/internal/period"
)

// Options of a bench run.
type Options struct {
	Events     int    // events to pre-fill
	Binary     string // the ingest binary to run (normally this executable)
	ClickHouse config.ClickHouse
	BatchSize  int           // ingest.batch_size for the run (0: default)
	Timeout    time.Duration // for each phase
	Keep       bool          // keep the bench database
	Out        io.Writer
	// GateCrossings is how many threshold crossings to time (0 skips), under
	// a background load of GateLoad events/s.
	GateCrossings int
	GateLoad      int
	// AuditSizes are the stored-event counts to time audit's queries at.
	AuditSizes []int
}

// Report is what a run measured.
type Report struct {
	Events       int
	PublishRate  float64 // events/s acked by JetStream while pre-filling
	RawRate      float64 // events/s a bare ack-only pull consumer reaches
	IngestRate   float64 // events/s ingest stores into ClickHouse and acks
	Ratio        float64 // IngestRate / RawRate
	PeakRSSBytes int64   // ingest's VmHWM
	Total        string  // exact sum published = stored
	Gate         GateReport
	Audit        []AuditReport
}

// Run runs the bench.
func Run(ctx context.Context, o Options) (Report, error) {
	rep := Report{Events: o.Events}
	dir, err := os.MkdirTemp("", "spendgate-bench")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(dir)
	cfg, err := config.Load(config.New(), "")
	if err != nil {
		return rep, err
	}
	b, err := events.Open(ctx, config.NATS{Listen: "127.0.0.1:0"}, dir, "spendgate-bench", nil)
	if err != nil {
		return rep, err
	}
	defer b.Close()
	if err := events.EnsureStreams(ctx, b.JS, cfg.NATS); err != nil {
		return rep, err
	}
	if o.Events > 0 {
		if err := throughput(ctx, o, b, cfg, dir, &rep); err != nil {
			return rep, err
		}
	}
	if o.GateCrossings > 0 {
		fmt.Fprintf(o.Out, "gate reaction: %d crossings under %d events/s of background load…\n", o.GateCrossings, o.GateLoad)
		if rep.Gate, err = runGate(ctx, o, b, dir); err != nil {
			return rep, fmt.Errorf("gate: %w", err)
		}
		fmt.Fprintf(o.Out, "gate reaction (publish of the crossing event to the transition on %s): p50 %s, p99 %s, max %s\n",
			"costs.gate.scaling", rep.Gate.P50.Round(time.Millisecond), rep.Gate.P99.Round(time.Millisecond), rep.Gate.Max.Round(time.Millisecond))
	}
	for _, n := range o.AuditSizes {
		fmt.Fprintf(o.Out, "audit latency with %d stored events…\n", n)
		ar, err := runAudit(ctx, o, n)
		if err != nil {
			return rep, fmt.Errorf("audit: %w", err)
		}
		rep.Audit = append(rep.Audit, ar)
		fmt.Fprintf(o.Out, "  audit summary: p50 %s p90 %s; audit costs --period month: p50 %s p90 %s (%d runs each)\n",
			ms(ar.SummaryP50), ms(ar.SummaryP90), ms(ar.CostsMonthP50), ms(ar.CostsMonthP90), auditRuns)
	}
	if len(rep.Audit) > 1 {
		first, last := rep.Audit[0], rep.Audit[len(rep.Audit)-1]
		fmt.Fprintf(o.Out, "audit at %d vs %d events: summary %.2fx, costs --period month %.2fx (p50)\n", last.Stored, first.Stored,
			float64(last.SummaryP50)/float64(first.SummaryP50), float64(last.CostsMonthP50)/float64(first.CostsMonthP50))
	}
	return rep, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// throughput is phases (a) and (b): the broker's limit and ingest end to end.
func throughput(ctx context.Context, o Options, b *events.Broker, cfg config.Config, dir string, rep *Report) error {
	fmt.Fprintf(o.Out, "pre-filling %d events into %s (nats %s)…\n", o.Events, events.StreamEvents, b.URL())
	pub, err := loadgen.Publish(ctx, b.JS, loadgen.NewGenerator(1, "bench-"), loadgen.Options{Count: o.Events})
	if err != nil {
		return fmt.Errorf("pre-fill: %w", err)
	}
	rep.PublishRate = float64(pub.Published) / pub.Elapsed.Seconds()
	rep.Total = pub.Total.StringFixed(events.CostScale)
	fmt.Fprintf(o.Out, "  published %d in %s: %.0f events/s, total_usd %s\n", pub.Published, pub.Elapsed.Round(time.Millisecond), rep.PublishRate, rep.Total)

	batch := o.BatchSize
	if batch == 0 {
		batch = cfg.Ingest.BatchSize
	}
	raw, err := rawConsume(ctx, b.JS, o.Events, batch, cfg.Ingest.MaxAckPending, o.Timeout)
	if err != nil {
		return fmt.Errorf("raw consumer: %w", err)
	}
	rep.RawRate = float64(o.Events) / raw.Seconds()
	fmt.Fprintf(o.Out, "(a) bare pull consumer, ack only: %d in %s: %.0f events/s\n", o.Events, raw.Round(time.Millisecond), rep.RawRate)

	ch, drop, err := scratchDB(ctx, o, "bench")
	if err != nil {
		return err
	}
	defer drop()
	elapsed, rss, err := runIngest(ctx, o, b.URL(), ch.Database(), batch, dir)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	rep.IngestRate = float64(o.Events) / elapsed.Seconds()
	rep.PeakRSSBytes = rss
	rep.Ratio = rep.IngestRate / rep.RawRate
	all := period.Range{Start: time.Unix(0, 0), End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	stored, err := ch.RawTotal(ctx, all)
	if err != nil {
		return err
	}
	if stored.Events != uint64(o.Events) || !stored.CostUSD.Equal(pub.Total) {
		return fmt.Errorf("stored %d events summing %s, published %d summing %s", stored.Events, stored.CostUSD.StringFixed(9), o.Events, rep.Total)
	}
	fmt.Fprintf(o.Out, "(b) ingest into ClickHouse %s: %d in %s: %.0f events/s, stored total_usd %s (exact)\n",
		o.ClickHouse.Addr, o.Events, elapsed.Round(time.Millisecond), rep.IngestRate, stored.CostUSD.StringFixed(9))
	fmt.Fprintf(o.Out, "ratio (b)/(a): %.2f\ningest peak RSS: %.1f MiB\n", rep.Ratio, float64(rss)/(1<<20))
	return nil
}

// rawConsume is the broker's limit: a durable pull consumer configured like
// ingest's that acks every message and does nothing else.
func rawConsume(ctx context.Context, js jetstream.JetStream, n, batch, maxAckPending int, timeout time.Duration) (time.Duration, error) {
	cc := events.ConsumerConfig("bench-raw", 30*time.Second, maxAckPending)
	cons, err := js.CreateOrUpdateConsumer(ctx, events.StreamEvents, cc)
	if err != nil {
		return 0, err
	}
	defer js.DeleteConsumer(context.Background(), events.StreamEvents, "bench-raw")
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * batch))
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i := 0; i < n; i++ {
		msg, err := it.Next(jetstream.NextContext(tctx))
		if err != nil {
			return 0, fmt.Errorf("after %d messages: %w", i, err)
		}
		if err := msg.Ack(); err != nil {
			return 0, err
		}
	}
	// The last acks are fire-and-forget like ingest's; wait until the
	// server has them all, so both runs are timed to the same point.
	for {
		info, err := cons.Info(tctx)
		if err != nil {
			return 0, err
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			return time.Since(start), nil
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// child is a running ingest process.
type child struct {
	cmd    *exec.Cmd
	exited chan error
}

// startIngest starts the ingest binary on natsURL and database db and waits
// for its "ingest running" line.
func startIngest(ctx context.Context, o Options, natsURL, db, dir string, args ...string) (*child, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	metrics := ln.Addr().String()
	ln.Close()
	cmd := exec.CommandContext(ctx, o.Binary, append([]string{"--nats-url", natsURL, "--clickhouse-addr", o.ClickHouse.Addr,
		"--clickhouse-database", db, "--metrics-listen", metrics, "--data-dir", filepath.Join(dir, "ingest")}, args...)...)
	cmd.Env = append(os.Environ(), "SPENDGATE_CLICKHOUSE_USER="+o.ClickHouse.User, "SPENDGATE_CLICKHOUSE_PASSWORD="+o.ClickHouse.Password)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, exited: make(chan error, 1)}
	running := make(chan struct{})
	var tail []string
	go func() {
		defer func() { c.exited <- cmd.Wait() }()
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			if !once && strings.Contains(sc.Text(), "ingest running") {
				once = true
				close(running)
			}
			if len(tail) < 20 {
				tail = append(tail, sc.Text())
			}
		}
	}()
	select {
	case <-running:
		return c, nil
	case <-time.After(60 * time.Second):
		c.stop()
		return nil, fmt.Errorf("not running after 60s: %s", strings.Join(tail, "\n"))
	}
}

// stop sends SIGINT and waits for a clean exit, killing it after 15s.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// runIngest runs the ingest binary until its consumer has acked all events,
// timed from its "ingest running" line; it returns that time and the peak RSS.
func runIngest(ctx context.Context, o Options, natsURL, db string, batch int, dir string) (time.Duration, int64, error) {
	c, err := startIngest(ctx, o, natsURL, db, dir, "--ingest-batch-size", strconv.Itoa(batch))
	if err != nil {
		return 0, 0, err
	}
	defer c.stop()
	start := time.Now()
	b, err := events.Open(ctx, config.NATS{URL: natsURL}, "", "spendgate-bench-watch", nil)
	if err != nil {
		return 0, 0, err
	}
	defer b.Close()
	cons, err := b.JS.Consumer(ctx, events.StreamEvents, "spendgate-ingest")
	if err != nil {
		return 0, 0, err
	}
	deadline := time.Now().Add(o.Timeout)
	for {
		info, err := cons.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= uint64(o.Events) {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("not done after %s", o.Timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	rss, err := peakRSS(c.cmd.Process.Pid)
	return elapsed, rss, err
}

// peakRSS reads VmHWM, the peak resident set, from /proc.
func peakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}
