package events_test

import (
	"testing"

	"github.com/spendgate/spendgate/internal/events"
)

var typical = []byte(`{"event_id":"synth-1764780000000000000-42","ts":"2026-05-20T10:30:00.123456789Z","service":"openai",` +
	`"operation":"chat_completion","cost_usd":"0.003125000","units":1250,"unit":"tokens",` +
	`"attributes":{"business_id":"biz-7","model":"gpt-4o"}}`)

// BenchmarkDecode is the worker's per-event parsing and validation cost.
func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(typical)))
	for i := 0; i < b.N; i++ {
		if _, _, err := events.Decode(typical); err != nil {
			b.Fatal(err)
		}
	}
}
