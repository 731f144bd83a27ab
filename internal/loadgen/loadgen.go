// Package loadgen publishes realistic synthetic cost events, for demos,
// end-to-end tests and the bench. It keeps the exact total of what JetStream
// acknowledged, so a test can compare it with what ClickHouse stored.
package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/events"
)

// call is one kind of paid API call with its price per unit in nano-dollars.
type call struct {
	service, operation, unit string
	minUnits, maxUnits       uint64
	nanosPerUnit             int64
	model                    string
}

var calls = []call{
	{"openai", "chat_completion", "tokens", 50, 4000, 2_500, "gpt-4o"},
	{"openai", "chat_completion", "tokens", 50, 4000, 150, "gpt-4o-mini"},
	{"openai", "embeddings", "tokens", 10, 8000, 20, "text-embedding-3-small"},
	{"anthropic", "messages", "tokens", 50, 4000, 3_000, "claude-sonnet"},
	{"sendgrid", "send_email", "emails", 1, 1, 800_000, ""},
	{"twilio", "send_sms", "messages", 1, 3, 7_900_000, ""},
	{"aws", "s3_storage", "bytes", 1 << 10, 64 << 20, 0, ""}, // priced per GiB below
	{"aws", "lambda_invoke", "requests", 1, 1, 200, ""},
}

// Generator makes events; with the same seed it makes the same ones.
type Generator struct {
	rng    *rand.Rand
	prefix string
	n      uint64
	Now    func() time.Time
}

// NewGenerator returns a generator whose event ids start with prefix.
func NewGenerator(seed uint64, prefix string) *Generator {
	return &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), prefix: prefix, Now: time.Now}
}

// Next returns the next synthetic event.
func (g *Generator) Next() events.Event {
	c := calls[g.rng.IntN(len(calls))]
	units := c.minUnits
	if c.maxUnits > c.minUnits {
		units += g.rng.Uint64N(c.maxUnits - c.minUnits + 1)
	}
	nanos := int64(units) * c.nanosPerUnit
	if c.service == "aws" && c.operation == "s3_storage" {
		nanos = int64(units) * 23_000_000 / (1 << 30) // $0.023 per GiB
	}
	g.n++
	ev := events.Event{
		EventID:   g.prefix + strconv.FormatUint(g.n, 10),
		TS:        g.Now().UTC(),
		Service:   c.service,
		Operation: c.operation,
		CostUSD:   decimal.New(nanos, -events.CostScale),
		Units:     units,
		Unit:      c.unit,
	}
	ev.AttrKeys = append(ev.AttrKeys, "business_id")
	ev.AttrValues = append(ev.AttrValues, "biz-"+strconv.Itoa(1+g.rng.IntN(20)))
	if c.model != "" {
		ev.AttrKeys = append(ev.AttrKeys, "model")
		ev.AttrValues = append(ev.AttrValues, c.model)
	}
	return ev
}

// Options of a publishing run.
type Options struct {
	Count int     // events to publish
	Rate  float64 // events per second; 0 is as fast as JetStream acks
}

// Result is what JetStream acknowledged.
type Result struct {
	Published int
	Total     decimal.Decimal
	Elapsed   time.Duration
}

// Publish publishes Count events from g asynchronously, each with
// Nats-Msg-Id set to its event_id, waits for every ack and returns the exact
// total of the acknowledged events. A publish JetStream refused is an error.
func Publish(ctx context.Context, js jetstream.JetStream, g *Generator, o Options) (Result, error) {
	start := time.Now()
	var res Result
	pending := make([]pendingAck, 0, 1024)
	settle := func() error {
		for _, p := range pending {
			select {
			case <-p.f.Ok():
				res.Published++
				res.Total = res.Total.Add(p.cost)
			case err := <-p.f.Err():
				return fmt.Errorf("publish %s: %w", p.f.Msg().Header.Get(nats.MsgIdHdr), err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		pending = pending[:0]
		return nil
	}
	for i := 0; i < o.Count; i++ {
		if o.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / o.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return res, ctx.Err()
				}
			}
		}
		ev := g.Next()
		m, err := Msg(ev)
		if err != nil {
			return res, err
		}
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return res, fmt.Errorf("publish %s: %w", ev.EventID, err)
		}
		pending = append(pending, pendingAck{f: f, cost: ev.CostUSD})
		if len(pending) == cap(pending) {
			if err := settle(); err != nil {
				return res, err
			}
		}
	}
	if err := settle(); err != nil {
		return res, err
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

type pendingAck struct {
	f    jetstream.PubAckFuture
	cost decimal.Decimal
}

// Msg is the NATS message a publisher sends for ev: JSON on
// costs.events.<service> with Nats-Msg-Id = event_id.
func Msg(ev events.Event) (*nats.Msg, error) {
	data, err := ev.MarshalJSON()
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(ev.Subject())
	m.Header.Set(nats.MsgIdHdr, ev.EventID)
	m.Data = data
	return m, nil
}
