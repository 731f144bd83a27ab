// Package ingest is the worker: it reads cost events from the shared durable
// JetStream consumer, stores them in ClickHouse one batch insert per flush,
// and acks a message only once it is durably stored (or dead-lettered).
//
// Exactly once in effect. JetStream delivers at least once; the worker makes
// each event count once:
//   - a publisher retry with the same Nats-Msg-Id inside the stream's
//     duplicate window (nats.duplicate_window) is dropped by JetStream itself;
//   - a message delivered for the first time (NumDelivered == 1) cannot have
//     been stored by anyone, so the hot path inserts it with no look-up;
//   - a redelivered message (its worker died or stalled between insert and
//     ack, or an ack was lost), and every message of a batch whose insert
//     failed and is retried (the failed insert may have landed), is first
//     looked up by event_id in cost_events within the ts span of the batch,
//     and only the ones not found are inserted;
//   - the same event_id twice in one batch is stored once.
//
// Limits: two messages with one event_id published further apart than the
// duplicate window, both delivered for the first time in different batches,
// are both stored (the publisher broke the one-id-per-call rule twice). A
// worker that stalls longer than ingest.ack_wait in the middle of an insert
// could race the redelivery of its own batch; the worker extends its
// messages' ack deadline with InProgress while it retries, so only a frozen
// process (not a slow ClickHouse) can do that.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/olap"
)

// item is one message of a batch and what became of its payload. A valid
// message keeps only its ack subject, so the payload is freed once decoded;
// a rejected one keeps the message for its dead letter.
type item struct {
	reply     string
	seq       uint64
	delivered uint64
	ev        events.Event
	err       *events.DecodeError
	msg       jetstream.Msg // rejected messages only
}

// Acknowledgement bodies of the JetStream protocol.
var (
	ackBody        = []byte("+ACK")
	inProgressBody = []byte("+WPI")
)

// Options tunes a Worker.
type Options struct {
	BatchSize     int
	FlushInterval time.Duration
	AckWait       time.Duration
	RetryMin      time.Duration
	RetryMax      time.Duration
	ShutdownGrace time.Duration
	// Inserters is how many batches may be inserted at once (default 1).
	// ClickHouse spends a fixed time on every insert (a new part per
	// table); two in flight hide it while the next batch is read.
	Inserters int
	Now       func() time.Time
	// AfterInsert, if set, runs after each successful insert and before the
	// acks: the fault hook crash tests use to kill a worker at the worst time.
	AfterInsert func(n int)
	// AfterFlush, if set, runs after each batch is acked (the gate evaluator
	// hooks here to re-evaluate at once).
	AfterFlush func()
}

// Worker moves events from one consumer into ClickHouse.
type Worker struct {
	opts    Options
	cons    jetstream.Consumer
	js      jetstream.JetStream
	nc      *nats.Conn
	store   olap.Writer
	metrics *Metrics
	log     *slog.Logger
	inserts atomic.Int64
}

// NewWorker builds a worker on an existing consumer.
func NewWorker(cons jetstream.Consumer, js jetstream.JetStream, store olap.Writer, m *Metrics, log *slog.Logger, o Options) *Worker {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Worker{opts: o, cons: cons, js: js, nc: js.Conn(), store: store, metrics: m, log: log.With("component", "ingest")}
}

// Run reads until ctx ends, then stops fetching, stores and acks what it
// holds (bounded by ShutdownGrace) and returns nil; if the consumer or the
// connection goes away first, it stores what it holds and returns why. Messages it could not
// store stay unacked and are redelivered to a worker later: nothing is lost.
func (w *Worker) Run(ctx context.Context) error {
	it, err := w.cons.Messages(jetstream.PullMaxMessages(2 * w.opts.BatchSize))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	// Inserters run in their own goroutines, so the next batch is read and
	// decoded while earlier ones are inserted; the channel holds one more.
	batches := make(chan []item, 1)
	flushCtx, cancelFlush := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFlush()
	var flushers sync.WaitGroup
	for range max(1, w.opts.Inserters) {
		flushers.Add(1)
		go func() {
			defer flushers.Done()
			for b := range batches {
				w.flush(flushCtx, b)
			}
		}()
	}

	// On shutdown: drain the iterator (what is buffered is still handed
	// out), flush it, and give up storing after ShutdownGrace.
	go func() {
		<-ctx.Done()
		it.Drain()
		if w.opts.ShutdownGrace > 0 {
			time.AfterFunc(w.opts.ShutdownGrace, cancelFlush)
		}
	}()

	// Next waits on ctx while nothing is held, and on the flush window (which
	// shutdown does not cut short) once a batch has begun.
	cur := make([]item, 0, w.opts.BatchSize)
	wait, cancelWindow := ctx, context.CancelFunc(func() {})
	var stopped error
read:
	for {
		msg, err := it.Next(jetstream.NextContext(wait))
		switch {
		case err == nil:
			if len(cur) == 0 {
				wait, cancelWindow = context.WithTimeout(context.WithoutCancel(ctx), w.opts.FlushInterval)
			}
			cur = append(cur, w.decode(msg))
			if len(cur) < w.opts.BatchSize {
				continue
			}
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			if ctx.Err() == nil { // not our Drain: the consumer or connection went away
				stopped = fmt.Errorf("consume: %w", err)
			}
			break read
		case errors.Is(err, context.DeadlineExceeded): // the flush window is over
		case errors.Is(err, context.Canceled): // shutdown, nothing held: read what Drain hands out
			wait = context.WithoutCancel(ctx)
			continue
		default:
			w.log.Warn("consume", "err", err)
			continue
		}
		cancelWindow()
		if len(cur) > 0 {
			batches <- cur
			cur = make([]item, 0, w.opts.BatchSize)
		}
		wait = ctx
		if ctx.Err() != nil {
			wait = context.WithoutCancel(ctx)
		}
	}
	cancelWindow()
	if len(cur) > 0 {
		batches <- cur
	}
	close(batches)
	flushers.Wait()
	return stopped
}

func (w *Worker) decode(msg jetstream.Msg) item {
	it := item{reply: msg.Reply()}
	var ok bool
	if it.delivered, it.seq, ok = parseAckSubject(it.reply); !ok {
		if md, err := msg.Metadata(); err == nil {
			it.seq, it.delivered = md.Sequence.Stream, md.NumDelivered
		}
	}
	ev, info, err := events.Decode(msg.Data())
	if err != nil {
		it.msg = msg
		var de *events.DecodeError
		if !errors.As(err, &de) {
			de = &events.DecodeError{Reason: events.ReasonMalformedJSON, Msg: err.Error()}
		}
		it.err = de
		return it
	}
	if info.UnknownFields > 0 {
		w.metrics.UnknownFields.Add(float64(info.UnknownFields))
	}
	it.ev = ev
	return it
}

// flush stores one batch and acks it. It retries until stored or ctx ends;
// on give-up nothing is acked.
func (w *Worker) flush(ctx context.Context, b []item) {
	start := time.Now()
	var dead []*nats.Msg
	rows := make([]olap.Row, 0, len(b))
	suspect := false // any message that may already be stored?
	seen := make(map[string]struct{}, len(b))
	dups := 0
	for i := range b {
		it := &b[i]
		if it.err != nil {
			dead = append(dead, events.DeadLetter(it.msg, it.seq, it.err))
			continue
		}
		if _, ok := seen[it.ev.EventID]; ok {
			dups++
			continue
		}
		seen[it.ev.EventID] = struct{}{}
		if it.delivered > 1 {
			suspect = true
		}
		rows = append(rows, olap.Row{Event: it.ev, StreamSeq: it.seq})
	}

	backoff := w.opts.RetryMin
	lastProgress := time.Now()
	for attempt := 1; ; attempt++ {
		// Retrying: tell JetStream the messages are still being worked on,
		// so it does not redeliver them meanwhile.
		if time.Since(lastProgress) > w.opts.AckWait/4 {
			for i := range b {
				_ = w.nc.Publish(b[i].reply, inProgressBody)
			}
			lastProgress = time.Now()
		}
		// One attempt is bounded well inside the ack deadline, so a stalled
		// ClickHouse cannot keep an insert open while JetStream redelivers
		// its messages to another worker.
		actx, cancel := context.WithTimeout(ctx, w.opts.AckWait/2)
		stored, d, err := w.store1(actx, dead, rows, suspect || attempt > 1)
		cancel()
		if err == nil {
			dead, rows = nil, stored
			dups += d
			break
		}
		w.metrics.InsertErrors.Inc()
		if ctx.Err() != nil {
			w.log.Error("giving up on a batch at shutdown; it stays unacked and will be redelivered",
				"events", len(b), "err", err)
			return
		}
		w.log.Warn("storing batch failed; retrying", "attempt", attempt, "events", len(b), "backoff", backoff, "err", err)
		select {
		case <-time.After(backoff + rand.N(backoff/4+1)):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, w.opts.RetryMax)
	}

	if w.opts.AfterInsert != nil {
		w.opts.AfterInsert(int(w.inserts.Add(1)))
	}
	for i := range b {
		_ = w.nc.Publish(b[i].reply, ackBody)
	}
	now := w.opts.Now()
	rejected := 0
	for i := range b {
		if e := b[i].err; e != nil {
			rejected++
			w.metrics.DeadLetters.WithLabelValues(string(e.Reason)).Inc()
			w.log.Warn("dead-lettered event", "reason", e.Reason, "err", e.Error(), "subject", b[i].msg.Subject(), "seq", b[i].seq)
		}
	}
	for i := range rows {
		w.metrics.DelaySeconds.Observe(now.Sub(rows[i].Event.TS).Seconds())
	}
	w.metrics.Events.WithLabelValues(ResultInserted).Add(float64(len(rows)))
	w.metrics.Events.WithLabelValues(ResultDuplicate).Add(float64(dups))
	w.metrics.Events.WithLabelValues(ResultRejected).Add(float64(rejected))
	w.metrics.BatchEvents.Observe(float64(len(b)))
	w.metrics.FlushSeconds.Observe(time.Since(start).Seconds())
	if len(rows) > 0 {
		w.metrics.LastInsert.SetToCurrentTime()
	}
	if w.opts.AfterFlush != nil {
		w.opts.AfterFlush()
	}
}

// store1 is one attempt: dead letters first (so a rejected event is kept
// before anything is acked), then the duplicate check if needed, then the
// insert. It returns the rows it inserted and how many it found stored.
func (w *Worker) store1(ctx context.Context, dead []*nats.Msg, rows []olap.Row, check bool) ([]olap.Row, int, error) {
	if len(dead) > 0 {
		if err := events.PublishDeadLetters(ctx, w.js, dead); err != nil {
			return nil, 0, fmt.Errorf("dead letters: %w", err)
		}
	}
	dups := 0
	if check && len(rows) > 0 {
		ids := make([]string, len(rows))
		from, to := rows[0].Event.TS, rows[0].Event.TS
		for i, r := range rows {
			ids[i] = r.Event.EventID
			if r.Event.TS.Before(from) {
				from = r.Event.TS
			}
			if r.Event.TS.After(to) {
				to = r.Event.TS
			}
		}
		stored, err := w.store.StoredEventIDs(ctx, ids, from, to)
		if err != nil {
			return nil, 0, err
		}
		if len(stored) > 0 {
			keep := make([]olap.Row, 0, len(rows)-len(stored))
			for _, r := range rows {
				if _, ok := stored[r.Event.EventID]; !ok {
					keep = append(keep, r)
				}
			}
			dups, rows = len(rows)-len(keep), keep
		}
	}
	if err := w.store.InsertEvents(ctx, rows); err != nil {
		return nil, 0, err
	}
	return rows, dups, nil
}

// parseAckSubject reads the delivery count and stream sequence from a
// JetStream ack subject without allocating:
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> or,
// with domain and account, $JS.ACK.<domain>.<acchash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<token>].
func parseAckSubject(s string) (delivered, seq uint64, ok bool) {
	var tok [12]string
	n := 0
	for n < len(tok) {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			tok[n] = s
			n++
			break
		}
		tok[n], s = s[:i], s[i+1:]
		n++
	}
	if n < 9 || tok[0] != "$JS" || tok[1] != "ACK" {
		return 0, 0, false
	}
	first := 4 // delivered
	if n >= 11 {
		first = 6
	}
	var err1, err2 error
	delivered, err1 = strconv.ParseUint(tok[first], 10, 64)
	seq, err2 = strconv.ParseUint(tok[first+1], 10, 64)
	return delivered, seq, err1 == nil && err2 == nil
}
