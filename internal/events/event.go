// Package events is the NATS side of spendgate: the cost event model, its strict
// decoder, the JetStream streams, the consumer the ingest worker reads from and
// the publisher services (and the demo load generator) write with.
package events

import (
	"encoding/json"
	"time"

	"github.com/shopspring/decimal"
)

// Subjects and streams of the contract (SPEC.md).
const (
	SubjectPrefix = "costs.events." // + <service>
	DLQPrefix     = "costs.dlq."    // + <reason>
	GatePrefix    = "costs.gate."   // + scaling | alert

	StreamEvents = "COST_EVENTS"
	StreamDLQ    = "COST_DLQ"
	StreamGate   = "COST_GATE"
)

// Limits of a cost event (SPEC.md, schemas/cost_event.schema.json).
const (
	MaxPayloadBytes   = 64 << 10
	MaxEventIDLen     = 128
	MaxNameLen        = 64 // service and operation
	MaxUnitLen        = 32
	MaxAttributes     = 32
	MaxAttrKeyLen     = 64
	MaxAttrValueLen   = 256
	CostScale         = 9 // fractional digits kept
	MaxCostIntDigits  = 9 // cost_usd < 1e9
	maxStorableUnixTS = 1<<32 - 1
)

// Event is one paid API call, as stored in ClickHouse's cost_events table.
type Event struct {
	EventID   string
	TS        time.Time // UTC
	Service   string
	Operation string
	// CostUSD is exact: at most 9 fractional digits, 0 <= cost < 1e9.
	CostUSD decimal.Decimal
	Units   uint64
	Unit    string
	// AttrKeys and AttrValues are the attributes object, in payload order,
	// kept as parallel arrays (ClickHouse 18.16 has no Map type).
	AttrKeys   []string
	AttrValues []string
}

// Subject is where the event is published: costs.events.<service>.
func (e *Event) Subject() string { return SubjectPrefix + e.Service }

// wireEvent is the JSON shape publishers send; cost travels as a string so
// no JSON library on the way turns it into a float.
type wireEvent struct {
	EventID    string            `json:"event_id"`
	TS         string            `json:"ts"`
	Service    string            `json:"service"`
	Operation  string            `json:"operation"`
	CostUSD    string            `json:"cost_usd"`
	Units      uint64            `json:"units,omitempty"`
	Unit       string            `json:"unit,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// MarshalJSON encodes the event as a publisher would send it.
func (e Event) MarshalJSON() ([]byte, error) {
	w := wireEvent{
		EventID:   e.EventID,
		TS:        e.TS.UTC().Format(time.RFC3339Nano),
		Service:   e.Service,
		Operation: e.Operation,
		CostUSD:   e.CostUSD.StringFixed(CostScale),
		Units:     e.Units,
		Unit:      e.Unit,
	}
	if len(e.AttrKeys) > 0 {
		w.Attributes = make(map[string]string, len(e.AttrKeys))
		for i, k := range e.AttrKeys {
			w.Attributes[k] = e.AttrValues[i]
		}
	}
	return json.Marshal(w)
}
