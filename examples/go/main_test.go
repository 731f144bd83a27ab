package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/testenv"
)

// The example publishes against a real JetStream server with spendgate's
// streams: every event lands in COST_EVENTS on its subject, with Nats-Msg-Id
// equal to its event_id, passes spendgate's strict decoder, and the costs
// add up to the total it prints. Running it again with the same ids stores
// nothing new.
func TestPublisher(t *testing.T) {
	ns, js := testenv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const n = 50
	args := []string{"-url", ns.ClientURL(), "-count", "50", "-id-prefix", "example-"}
	var out strings.Builder
	if err := run(ctx, args, &out); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^published 50 events totalling ([0-9.]+) USD: 50 stored, 0 duplicates\n$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("output %q", out.String())
	}
	printed := decimal.RequireFromString(m[1])

	stream, err := js.Stream(ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Fatalf("COST_EVENTS holds %d messages, want %d", info.State.Msgs, n)
	}
	cons, err := js.OrderedConsumer(ctx, events.StreamEvents, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var total decimal.Decimal
	ids := map[string]bool{}
	for i := 0; i < n; i++ {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		ev, _, err := events.Decode(msg.Data())
		if err != nil {
			t.Fatalf("%s: spendgate rejects %s: %v", msg.Subject(), msg.Data(), err)
		}
		if got := msg.Headers().Get(jetstream.MsgIDHeader); got != ev.EventID {
			t.Errorf("Nats-Msg-Id %q, event_id %q", got, ev.EventID)
		}
		if msg.Subject() != ev.Subject() {
			t.Errorf("published on %s, want %s", msg.Subject(), ev.Subject())
		}
		if time.Since(ev.TS) > time.Minute || ev.Units == 0 || ev.Unit == "" || len(ev.AttrKeys) == 0 {
			t.Errorf("event %+v lacks a field", ev)
		}
		ids[ev.EventID] = true
		total = total.Add(ev.CostUSD)
	}
	if len(ids) != n {
		t.Errorf("%d distinct event ids, want %d", len(ids), n)
	}
	if !total.Equal(printed) {
		t.Errorf("events total %s, printed %s", total, printed)
	}

	// The same ids again: JetStream drops them all.
	out.Reset()
	if err := run(ctx, args, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), ": 0 stored, 50 duplicates\n") {
		t.Errorf("second run: %q", out.String())
	}
	if info, err = stream.Info(ctx); err != nil || info.State.Msgs != n {
		t.Errorf("after the second run COST_EVENTS holds %d messages (%v), want %d", info.State.Msgs, err, n)
	}

	// No stream (spendgate never started): the publish fails, it is not lost silently.
	if err := js.DeleteStream(ctx, events.StreamEvents); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	short, cancelShort := context.WithTimeout(ctx, 10*time.Second)
	defer cancelShort()
	if err := run(short, []string{"-url", ns.ClientURL(), "-count", "1"}, &out); err == nil {
		t.Errorf("publishing without COST_EVENTS succeeded: %q", out.String())
	}
}
