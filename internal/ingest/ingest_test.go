package ingest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/config"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/ingest"
	"github.com/spendgate/spendgate/internal/loadgen"
	"github.com/spendgate/spendgate/internal/olap"
	"github.com/spendgate/spendgate/internal/period"
	"github.com/spendgate/spendgate/internal/testenv"
)

func testConfig(t testing.TB, ns *server.Server, db string) config.Config {
	return testenv.IngestConfig(t, ns.ClientURL(), db)
}

func startService(t testing.TB, cfg config.Config) *ingest.Service {
	return testenv.StartIngest(t, cfg)
}

// storedTotals reads the raw table: sum, rows and distinct event ids.
func storedTotals(t testing.TB, c *olap.Client) (decimal.Decimal, uint64) {
	t.Helper()
	all := period.Range{Start: time.Unix(0, 0), End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := c.RawTotal(context.Background(), all)
	if err != nil {
		t.Fatal(err)
	}
	return s.CostUSD, s.Events
}

func waitStored(t testing.TB, c *olap.Client, n uint64, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, "events stored", func() bool {
		_, got := storedTotals(t, c)
		return got >= n
	})
}

func assertExactlyOnce(t testing.TB, c *olap.Client, want loadgen.Result) {
	t.Helper()
	sum, n := storedTotals(t, c)
	if n != uint64(want.Published) || !sum.Equal(want.Total) {
		t.Fatalf("stored %d events summing %s, want %d summing %s", n, sum.StringFixed(9), want.Published, want.Total.StringFixed(9))
	}
	// ClickHouse writes the materialized view's block just after the raw
	// one, so a read in between can see the raw row alone: poll briefly.
	all := period.Range{Start: time.Unix(0, 0), End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	var roll olap.Spend
	deadline := time.Now().Add(2 * time.Second)
	for {
		var err error
		if roll, err = c.Total(context.Background(), all, olap.Filter{}); err != nil {
			t.Fatal(err)
		}
		if roll.Events >= uint64(want.Published) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !roll.CostUSD.Equal(want.Total) || roll.Events != uint64(want.Published) {
		t.Fatalf("rollup has %d events summing %s, want %d summing %s", roll.Events, roll.CostUSD, want.Published, want.Total)
	}
}

func publish(t testing.TB, js jetstream.JetStream, seed uint64, prefix string, n int) loadgen.Result {
	t.Helper()
	res, err := loadgen.Publish(context.Background(), js, loadgen.NewGenerator(seed, prefix), loadgen.Options{Count: n})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// The corpus's invalid events, interleaved with valid ones, all go to
// COST_DLQ with their reason while every valid event around them is stored.
func TestInvalidEventsAreDeadLettered(t *testing.T) {
	ns := testenv.NATS(t)
	ch := testenv.ClickHouse(t)
	cfg := testConfig(t, ns, ch.Database())
	svc := startService(t, cfg)
	_, js := testenv.Connect(t, ns)

	manifest := readManifest(t)
	names := make([]string, 0, len(manifest))
	for name := range manifest {
		names = append(names, name)
	}
	sort.Strings(names)
	var want loadgen.Result
	gen := loadgen.NewGenerator(7, "dlq-valid-")
	for i, name := range names {
		ev := gen.Next()
		m, err := loadgen.Msg(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		want.Published++
		want.Total = want.Total.Add(ev.CostUSD)
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "invalid", name))
		if err != nil {
			t.Fatal(err)
		}
		bad := nats.NewMsg("costs.events.corpus")
		bad.Header.Set("X-Corpus-File", name)
		bad.Header.Set(nats.MsgIdHdr, "corpus-"+string(rune('a'+i%26))+name)
		bad.Data = data
		if _, err := js.PublishMsg(context.Background(), bad); err != nil {
			t.Fatalf("publish %s: %v", name, err)
		}
	}
	// The >64 KiB payload the manifest cannot hold as a file.
	big := nats.NewMsg("costs.events.corpus")
	big.Header.Set("X-Corpus-File", "generated_too_large")
	big.Data = []byte(`{"pad":"` + strings.Repeat("x", events.MaxPayloadBytes) + `"}`)
	if _, err := js.PublishMsg(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	manifest["generated_too_large"] = manifestEntry{Reason: string(events.ReasonTooLarge)}

	waitStored(t, ch, uint64(want.Published), 30*time.Second)
	testenv.Eventually(t, 30*time.Second, "dead letters counted", func() bool {
		return int(testutil.ToFloat64(svc.Metrics.Events.WithLabelValues(ingest.ResultRejected))) == len(manifest)
	})
	assertExactlyOnce(t, ch, want)

	// Read COST_DLQ back: every invalid file once, on costs.dlq.<reason>,
	// with the original payload, subject and headers.
	cons, err := js.OrderedConsumer(context.Background(), events.StreamDLQ, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < len(manifest) {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("reading COST_DLQ after %d of %d: %v", len(seen), len(manifest), err)
		}
		file := msg.Headers().Get("X-Corpus-File")
		entry, ok := manifest[file]
		if !ok || seen[file] {
			t.Fatalf("unexpected dead letter %q (seen before: %v)", file, seen[file])
		}
		seen[file] = true
		reason := msg.Headers().Get(events.HeaderReason)
		if reason != entry.Reason || msg.Subject() != events.DLQPrefix+reason {
			t.Errorf("%s: dead-lettered as %q on %s, want %q", file, reason, msg.Subject(), entry.Reason)
		}
		if got := msg.Headers().Get(events.HeaderSubject); got != "costs.events.corpus" {
			t.Errorf("%s: original subject header %q", file, got)
		}
		if msg.Headers().Get(events.HeaderError) == "" || msg.Headers().Get(events.HeaderStreamSeq) == "" {
			t.Errorf("%s: error or sequence header missing: %v", file, msg.Headers())
		}
		if file != "generated_too_large" {
			data, _ := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "invalid", file))
			if string(msg.Data()) != string(data) {
				t.Errorf("%s: payload changed in the dead letter", file)
			}
		}
	}
}

type manifestEntry struct {
	Reason string `json:"reason"`
	GoOnly bool   `json:"go_only"`
}

// The worker of a batch whose insert landed but whose answer was lost (the
// insert "failed") retries: the retry finds the rows and stores nothing twice.
func TestAmbiguousInsertFailureIsNotCountedTwice(t *testing.T) {
	ch := testenv.ClickHouse(t)
	flaky := &lossyWriter{Writer: ch, loseEvery: 2}
	r := runWorker(t, ch.Database(), flaky, 1200)
	waitStored(t, ch, uint64(r.want.Published), 30*time.Second)
	r.stop(t)
	if flaky.lost.Load() == 0 {
		t.Fatal("no insert answer was lost: the test tested nothing")
	}
	assertExactlyOnce(t, ch, r.want)
}

// workerRun is a bare Worker on its own consumer and writer, over n
// published events.
type workerRun struct {
	want    loadgen.Result
	js      jetstream.JetStream
	cons    jetstream.Consumer
	metrics *ingest.Metrics
	cancel  context.CancelFunc
	done    chan error
}

func runWorker(t *testing.T, db string, w olap.Writer, n int) *workerRun {
	t.Helper()
	ns, js := testenv.JetStream(t)
	cfg := testConfig(t, ns, db)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cons, err := js.CreateOrUpdateConsumer(ctx, events.StreamEvents, events.ConsumerConfig("c", cfg.Ingest.AckWait, 1000))
	if err != nil {
		t.Fatal(err)
	}
	r := &workerRun{want: publish(t, js, uint64(n), "w-", n), js: js, cons: cons, metrics: ingest.NewMetrics(newRegistry()),
		cancel: cancel, done: make(chan error, 1)}
	wk := ingest.NewWorker(cons, js, w, r.metrics, testenv.Logger(t), ingest.Options{
		BatchSize: 100, FlushInterval: 20 * time.Millisecond, AckWait: cfg.Ingest.AckWait,
		RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	})
	go func() { r.done <- wk.Run(ctx) }()
	return r
}

// stop waits until everything is acked, then stops the worker cleanly.
func (r *workerRun) stop(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "all acked", func() bool {
		info, err := r.cons.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
}

// lossyWriter stores every batch but reports every loseEvery-th one as
// failed, as when the connection drops after ClickHouse committed.
type lossyWriter struct {
	olap.Writer
	loseEvery int64
	n, lost   atomic.Int64
}

func (w *lossyWriter) InsertEvents(ctx context.Context, rows []olap.Row) error {
	if err := w.Writer.InsertEvents(ctx, rows); err != nil {
		return err
	}
	if len(rows) > 0 && w.n.Add(1)%w.loseEvery == 0 {
		w.lost.Add(1)
		return errors.New("read: connection reset by peer (simulated, after commit)")
	}
	return nil
}

// Two workers on one durable consumer store every event exactly once.
func TestTwoWorkersShareTheConsumer(t *testing.T) {
	ns := testenv.NATS(t)
	ch := testenv.ClickHouse(t)
	cfg := testConfig(t, ns, ch.Database())
	cfg.Ingest.BatchSize = 500
	a := startService(t, cfg)
	b := startService(t, cfg)
	_, js := testenv.Connect(t, ns)
	want := publish(t, js, 11, "two-", 20000)
	waitStored(t, ch, uint64(want.Published), 60*time.Second)
	testenv.Eventually(t, 10*time.Second, "metrics", func() bool {
		return testutil.ToFloat64(a.Metrics.Events.WithLabelValues(ingest.ResultInserted))+
			testutil.ToFloat64(b.Metrics.Events.WithLabelValues(ingest.ResultInserted)) == float64(want.Published)
	})
	ia := testutil.ToFloat64(a.Metrics.Events.WithLabelValues(ingest.ResultInserted))
	ib := testutil.ToFloat64(b.Metrics.Events.WithLabelValues(ingest.ResultInserted))
	if ia == 0 || ib == 0 {
		t.Fatalf("one worker did all the work (%v and %v): the consumer was not shared", ia, ib)
	}
	assertExactlyOnce(t, ch, want)
}

// A publisher retry (same Nats-Msg-Id) is dropped by JetStream.
func TestPublisherRetryIsDropped(t *testing.T) {
	ns := testenv.NATS(t)
	ch := testenv.ClickHouse(t)
	cfg := testConfig(t, ns, ch.Database())
	startService(t, cfg)
	_, js := testenv.Connect(t, ns)
	ev := loadgen.NewGenerator(1, "retry-").Next()
	for i := 0; i < 3; i++ {
		m, _ := loadgen.Msg(ev)
		ack, err := js.PublishMsg(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ack.Duplicate, i > 0; got != want {
			t.Fatalf("publish %d: Duplicate=%v, want %v", i, got, want)
		}
	}
	waitStored(t, ch, 1, 10*time.Second)
	assertExactlyOnce(t, ch, loadgen.Result{Published: 1, Total: ev.CostUSD})
}

// Cancelling Run (SIGTERM) stores and acks what is held and returns nil.
func TestShutdownFlushesAndAcks(t *testing.T) {
	ns := testenv.NATS(t)
	ch := testenv.ClickHouse(t)
	cfg := testConfig(t, ns, ch.Database())
	cfg.Ingest.FlushInterval = time.Hour // only a full batch or shutdown flushes
	cfg.Ingest.BatchSize = 100000
	cfg.Ingest.MaxAckPending = 100000
	_, js := testenv.Connect(t, ns)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := ingest.New(ctx, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	want := publish(t, js, 5, "stop-", 3000)
	cons, err := js.Consumer(context.Background(), events.StreamEvents, cfg.Ingest.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "all delivered", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == want.Published
	})
	if _, n := storedTotals(t, ch); n != 0 {
		t.Fatalf("%d stored before shutdown with a 1h flush interval", n)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(cfg.Ingest.ShutdownGrace + 5*time.Second):
		t.Fatal("Run did not return after cancel")
	}
	assertExactlyOnce(t, ch, want)
	// Run flushed the acks to the server before returning; it applies them
	// asynchronously, so poll briefly.
	testenv.Eventually(t, 2*time.Second, "no message unacked after a clean stop", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumAckPending == 0
	})
}

func TestMetricsFollowConventions(t *testing.T) {
	reg := newRegistry()
	ingest.NewMetrics(reg)
	problems, err := promlint.NewWithMetricFamilies(mustGather(t, reg)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "spendgate_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

// While ClickHouse refuses inserts nothing is acked; once it is back, every
// event is stored exactly once.
func TestClickHouseOutageAcksNothing(t *testing.T) {
	ch := testenv.ClickHouse(t)
	down := &outageWriter{Writer: ch}
	down.down.Store(true)
	r := runWorker(t, ch.Database(), down, 700)
	testenv.Eventually(t, 10*time.Second, "insert errors", func() bool { return testutil.ToFloat64(r.metrics.InsertErrors) >= 5 })
	info, err := r.cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := uint64(r.want.Published) - info.NumPending - uint64(info.NumAckPending); got != 0 || info.AckFloor.Stream != 0 {
		t.Fatalf("acked during the outage: ack floor %d, %d neither pending nor unacked", info.AckFloor.Stream, got)
	}
	if _, n := storedTotals(t, ch); n != 0 {
		t.Fatalf("%d stored during the outage", n)
	}
	down.down.Store(false)
	waitStored(t, ch, uint64(r.want.Published), 30*time.Second)
	r.stop(t)
	assertExactlyOnce(t, ch, r.want)
}

// outageWriter fails every insert, storing nothing, while down is set.
type outageWriter struct {
	olap.Writer
	down atomic.Bool
}

func (w *outageWriter) InsertEvents(ctx context.Context, rows []olap.Row) error {
	if w.down.Load() {
		return errors.New("clickhouse at 127.0.0.1:9000: dial tcp: connection refused (simulated)")
	}
	return w.Writer.InsertEvents(ctx, rows)
}

// A consumer deleted under a running worker stops it with an error (so the
// process exits non-zero and is restarted), not silently.
func TestDeletedConsumerStopsTheWorker(t *testing.T) {
	ch := testenv.ClickHouse(t)
	r := runWorker(t, ch.Database(), ch, 300)
	waitStored(t, ch, uint64(r.want.Published), 30*time.Second)
	info, err := r.cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.js.DeleteConsumer(context.Background(), events.StreamEvents, info.Name); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err == nil {
			t.Fatal("worker returned nil after its consumer was deleted")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("worker kept running without its consumer")
	}
}
