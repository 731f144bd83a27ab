package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spendgate/spendgate/internal/events"
)

// Where the gate lives in JetStream (SPEC.md).
const (
	Bucket        = "spendgate_gate"
	Key           = GateScaling
	AlertBucket   = "spendgate_gate_alerts"
	SubjectState  = events.GatePrefix + GateScaling // costs.gate.scaling
	SubjectAlert  = events.GatePrefix + "alert"     // costs.gate.alert
	alertKeepDays = 40
)

// ErrConflict means another writer changed the gate first; re-read and retry.
var ErrConflict = errors.New("gate changed concurrently")

// Store is the gate's state in KV and its events in COST_GATE.
type Store struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	alerts jetstream.KeyValue
}

// OpenStore creates or binds the KV buckets (and needs the COST_GATE stream,
// which ingest creates; see events.EnsureStreams).
func OpenStore(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	if replicas < 1 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "spendgate scaling gate: current state", History: 1,
		Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("kv %s: %w", Bucket, err)
	}
	alerts, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: AlertBucket, Description: "spendgate: budget alerts already sent, one per budget, level and period",
		History: 1, TTL: alertKeepDays * 24 * time.Hour, Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("kv %s: %w", AlertBucket, err)
	}
	return &Store{js: js, kv: kv, alerts: alerts}, nil
}

// Load returns the current state and its KV revision (0 when none yet).
func (s *Store) Load(ctx context.Context) (State, uint64, error) {
	e, err := s.kv.Get(ctx, Key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Initial(), 0, nil
	}
	if err != nil {
		return State{}, 0, fmt.Errorf("kv %s/%s: %w", Bucket, Key, err)
	}
	var st State
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return State{}, 0, fmt.Errorf("kv %s/%s: %w", Bucket, Key, err)
	}
	return st, e.Revision(), nil
}

// Commit writes next if the state is still at revision rev (compare-and-set)
// and then publishes it as the gate-state event. ErrConflict means someone
// else committed first and nothing was written.
func (s *Store) Commit(ctx context.Context, next State, rev uint64) error {
	data, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = s.kv.Create(ctx, Key, data)
	} else {
		_, err = s.kv.Update(ctx, Key, data, rev)
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return ErrConflict
		}
		return fmt.Errorf("kv %s/%s: %w", Bucket, Key, err)
	}
	return s.publish(ctx, data, next.Seq)
}

// publish sends a committed state on costs.gate.scaling. Its Nats-Msg-Id is
// the state's seq, so publishing one state twice (a retry, Reconcile) stores
// it once.
func (s *Store) publish(ctx context.Context, data []byte, seq uint64) error {
	m := nats.NewMsg(SubjectState)
	m.Header.Set(nats.MsgIdHdr, "gate-scaling-"+strconv.FormatUint(seq, 10))
	m.Data = data
	if _, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectStream(events.StreamGate)); err != nil {
		return fmt.Errorf("publish %s: %w", SubjectState, err)
	}
	return nil
}

// Reconcile publishes the KV state if COST_GATE does not have it yet: the
// writer that committed it died before publishing. It is cheap and idempotent.
func (s *Store) Reconcile(ctx context.Context) error {
	e, err := s.kv.Get(ctx, Key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kv %s/%s: %w", Bucket, Key, err)
	}
	var cur State
	if err := json.Unmarshal(e.Value(), &cur); err != nil {
		return err
	}
	last, err := s.lastPublished(ctx)
	if err != nil {
		return err
	}
	if last != nil && last.Seq >= cur.Seq {
		return nil
	}
	return s.publish(ctx, e.Value(), cur.Seq)
}

func (s *Store) lastPublished(ctx context.Context) (*State, error) {
	str, err := s.js.Stream(ctx, events.StreamGate)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", events.StreamGate, err)
	}
	m, err := str.GetLastMsgForSubject(ctx, SubjectState)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", events.StreamGate, err)
	}
	var st State
	if err := json.Unmarshal(m.Data, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// History returns up to limit gate-state events, newest first, from COST_GATE.
func (s *Store) History(ctx context.Context, limit int) ([]State, error) {
	str, err := s.js.Stream(ctx, events.StreamGate)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", events.StreamGate, err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", events.StreamGate, err)
	}
	var out []State
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && len(out) < limit; seq-- {
		m, err := str.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s seq %d: %w", events.StreamGate, seq, err)
		}
		if m.Subject != SubjectState {
			continue
		}
		var st State
		if err := json.Unmarshal(m.Data, &st); err != nil {
			return nil, fmt.Errorf("stream %s seq %d: %w", events.StreamGate, seq, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// Alert is a threshold warning on costs.gate.alert, sent once per budget,
// level and period.
type Alert struct {
	Gate        string       `json:"gate"`
	Level       string       `json:"level"` // warning (alert_threshold) | exhausted (100%)
	Threshold   string       `json:"threshold"`
	Budget      BudgetStatus `json:"budget"`
	PeriodStart time.Time    `json:"period_start"`
	At          time.Time    `json:"at"`
	By          string       `json:"by"`
}

// SendAlertOnce publishes a once the first time its key is seen; it reports
// whether this call sent it. KV Create is the once: a second evaluator, or
// the next evaluation, finds the key and sends nothing.
func (s *Store) SendAlertOnce(ctx context.Context, a Alert) (bool, error) {
	key := fmt.Sprintf("%s.%s.%d", a.Budget.Name, a.Level, a.PeriodStart.Unix())
	if _, err := s.alerts.Create(ctx, key, []byte(a.At.Format(time.RFC3339))); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil
		}
		return false, fmt.Errorf("kv %s: %w", AlertBucket, err)
	}
	data, err := json.Marshal(a)
	if err != nil {
		return false, err
	}
	m := nats.NewMsg(SubjectAlert)
	m.Header.Set(nats.MsgIdHdr, "alert-"+key)
	m.Data = data
	if _, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectStream(events.StreamGate)); err != nil {
		// Let a later evaluation try again.
		_ = s.alerts.Delete(ctx, key)
		return false, fmt.Errorf("publish %s: %w", SubjectAlert, err)
	}
	return true, nil
}

// Watch calls fn with every gate-state event published from now on, until
// ctx ends.
func (s *Store) Watch(ctx context.Context, fn func(State, []byte)) error {
	cons, err := s.js.OrderedConsumer(ctx, events.StreamGate, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{SubjectState}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", events.StreamGate, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); it.Stop() }()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var st State
		if err := json.Unmarshal(m.Data(), &st); err == nil {
			fn(st, m.Data())
		}
	}
}
