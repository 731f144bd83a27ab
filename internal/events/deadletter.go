package events

import (
	"context"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers a dead letter carries besides the original payload.
const (
	HeaderReason    = "Spendgate-Reason"     // the Reason token, also the subject's last token
	HeaderError     = "Spendgate-Error"      // the full message, e.g. "invalid_cost: cost_usd: -1 is not >= 0…"
	HeaderSubject   = "Spendgate-Subject"    // the subject it was published on
	HeaderStreamSeq = "Spendgate-Stream-Seq" // its sequence in COST_EVENTS
)

// DeadLetter builds the COST_DLQ message for a rejected event: the original
// payload and headers, plus why. Its Nats-Msg-Id is derived from the original
// stream sequence, so a dead letter published again after a redelivery is
// dropped by the stream's duplicate window.
func DeadLetter(orig jetstream.Msg, streamSeq uint64, derr *DecodeError) *nats.Msg {
	m := nats.NewMsg(DLQPrefix + string(derr.Reason))
	for k, vs := range orig.Headers() {
		if k == nats.MsgIdHdr {
			continue
		}
		m.Header[k] = vs
	}
	seq := strconv.FormatUint(streamSeq, 10)
	m.Header.Set(HeaderReason, string(derr.Reason))
	m.Header.Set(HeaderError, derr.Error())
	m.Header.Set(HeaderSubject, orig.Subject())
	m.Header.Set(HeaderStreamSeq, seq)
	m.Header.Set(nats.MsgIdHdr, "dlq-"+seq)
	m.Data = orig.Data()
	return m
}

// PublishDeadLetters publishes dead letters and waits until the stream has
// stored every one (or ctx ends): only then may the originals be acked.
func PublishDeadLetters(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := js.PublishMsgAsync(m, jetstream.WithExpectStream(StreamDLQ))
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
