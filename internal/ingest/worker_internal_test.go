package ingest

import "testing"

func TestParseAckSubject(t *testing.T) {
	for _, tc := range []struct {
		subject        string
		delivered, seq uint64
		ok             bool
	}{
		{"$JS.ACK.COST_EVENTS.spendgate-ingest.3.1042.1000.1764780000000000000.17", 3, 1042, true},
		{"$JS.ACK.hub.ACCHASH.COST_EVENTS.spendgate-ingest.1.7.7.1764780000000000000.0.xyz", 1, 7, true},
		{"$JS.ACK.hub.ACCHASH.COST_EVENTS.spendgate-ingest.2.9.9.1764780000000000000.0", 2, 9, true},
		{"_INBOX.abc", 0, 0, false},
		{"$JS.ACK.S.C.x.1.1.1.1", 0, 0, false},
	} {
		d, s, ok := parseAckSubject(tc.subject)
		if ok != tc.ok || (ok && (d != tc.delivered || s != tc.seq)) {
			t.Errorf("parseAckSubject(%q) = %d, %d, %v; want %d, %d, %v", tc.subject, d, s, ok, tc.delivered, tc.seq, tc.ok)
		}
	}
}
