// Command publisher is a complete example of a service publishing its cost
// events to spendgate from Go, with nats.go's jetstream package: one JSON
// event per paid API call on costs.events.<service>, published
// asynchronously with the header Nats-Msg-Id set to the event_id, so that
// JetStream drops a retry of the same call, then waiting for every ack.
//
//	go run ./examples/go                          # 10 demo events to nats://127.0.0.1:4222
//	go run ./examples/go -count 1000 -url nats://nats.internal:4222 -creds svc.creds
//
// Copy CostEvent and Publish into a service; call Publish (or publish one
// event at a time with js.PublishMsgAsync) right after each paid call.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// CostEvent is the wire format of schemas/cost_event.schema.json.
type CostEvent struct {
	EventID   string    `json:"event_id"` // unique per real call: the idempotency key
	TS        time.Time `json:"ts"`       // when the call happened (RFC 3339)
	Service   string    `json:"service"`  // ^[a-z0-9][a-z0-9_.-]{0,63}$
	Operation string    `json:"operation"`
	// CostUSD is a decimal string ("0.0125"), at most 9 fractional digits:
	// a string never goes through a float on its way.
	CostUSD    string            `json:"cost_usd"`
	Units      uint64            `json:"units,omitempty"`
	Unit       string            `json:"unit,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"` // business_id, model, tier…
}

// Subject is where spendgate expects the event.
func (e CostEvent) Subject() string { return "costs.events." + e.Service }

// Result counts what JetStream acknowledged.
type Result struct {
	Stored     int // new events, in the COST_EVENTS stream
	Duplicates int // retries JetStream recognised by Nats-Msg-Id and dropped
}

// Publish sends every event asynchronously and waits until each one is
// acknowledged. A publish that fails (timeout, no stream) is sent again with
// the same Nats-Msg-Id, so it can never be counted twice.
func Publish(ctx context.Context, js jetstream.JetStream, evs []CostEvent) (Result, error) {
	var res Result
	futures := make([]jetstream.PubAckFuture, 0, len(evs))
	for _, ev := range evs {
		data, err := json.Marshal(ev)
		if err != nil {
			return res, err
		}
		msg := nats.NewMsg(ev.Subject())
		msg.Header.Set(jetstream.MsgIDHeader, ev.EventID)
		msg.Data = data
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			return res, fmt.Errorf("publish %s: %w", ev.EventID, err)
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return res, ctx.Err()
	}
	for _, f := range futures {
		var ack *jetstream.PubAck
		select {
		case ack = <-f.Ok():
		case err := <-f.Err():
			// Same message, same Nats-Msg-Id: safe to send again.
			ack, err = js.PublishMsg(ctx, f.Msg(), jetstream.WithRetryAttempts(5))
			if err != nil {
				return res, fmt.Errorf("publish %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
			}
		}
		if ack.Duplicate {
			res.Duplicates++
		} else {
			res.Stored++
		}
	}
	return res, nil
}

// demo are the calls the example pretends to have made: service, operation,
// unit, units and cost in millionths of a dollar.
var demo = []struct {
	service, operation, unit string
	units                    uint64
	micros                   int64
	attrs                    map[string]string
}{
	{"openai", "chat_completion", "tokens", 1250, 12_500, map[string]string{"model": "gpt-4o"}},
	{"anthropic", "messages", "tokens", 2000, 18_000, map[string]string{"model": "claude-sonnet"}},
	{"sendgrid", "send_email", "emails", 1, 1_000, nil},
	{"twilio", "sms", "messages", 1, 7_900, map[string]string{"country": "US"}},
	{"aws", "s3_put", "requests", 1000, 5_000, nil},
}

// micros formats millionths of a dollar as an exact decimal string.
func micros(n int64) string { return fmt.Sprintf("%d.%06d", n/1_000_000, n%1_000_000) }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("publisher", flag.ContinueOnError)
	url := fs.String("url", envOr("NATS_URL", nats.DefaultURL), "NATS server URL(s), comma-separated ($NATS_URL)")
	creds := fs.String("creds", os.Getenv("NATS_CREDS"), "NATS credentials file ($NATS_CREDS)")
	count := fs.Int("count", 10, "demo events to publish")
	prefix := fs.String("id-prefix", "", "event_id prefix (default: random); the same prefix again publishes the same ids, which JetStream drops as duplicates")
	business := fs.String("business-id", "b-42", "attributes.business_id of the demo events")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *count < 0 {
		return errors.New("-count must be >= 0")
	}
	if *prefix == "" {
		*prefix = rand.Text()[:12] + "-"
	}

	opts := []nats.Option{nats.Name("spendgate-example-publisher")}
	if *creds != "" {
		opts = append(opts, nats.UserCredentials(*creds))
	}
	nc, err := nats.Connect(*url, opts...)
	if err != nil {
		return fmt.Errorf("nats at %s: %w", *url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		return err
	}

	evs := make([]CostEvent, *count)
	var total int64
	for i := range evs {
		d := demo[i%len(demo)]
		attrs := map[string]string{"business_id": *business}
		for k, v := range d.attrs {
			attrs[k] = v
		}
		evs[i] = CostEvent{
			EventID: *prefix + strconv.Itoa(i+1), TS: time.Now().UTC(),
			Service: d.service, Operation: d.operation, CostUSD: micros(d.micros),
			Units: d.units, Unit: d.unit, Attributes: attrs,
		}
		total += d.micros
	}
	res, err := Publish(ctx, js, evs)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "published %d events totalling %s USD: %d stored, %d duplicates\n",
		len(evs), micros(total), res.Stored, res.Duplicates)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "publisher:", err)
		os.Exit(1)
	}
}
