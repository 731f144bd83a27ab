package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spendgate/spendgate/internal/gate"
)

// GateStatus is `audit gate status`: the state now and the recent history.
type GateStatus struct {
	Gate      string       `json:"gate"`
	State     string       `json:"state"`
	Mode      string       `json:"mode"`
	Source    string       `json:"source"`
	Reason    string       `json:"reason"`
	By        string       `json:"by,omitempty"`
	Since     *time.Time   `json:"since,omitempty"`
	ModeUntil *time.Time   `json:"mode_until,omitempty"`
	AutoState string       `json:"auto_state"` // what the automatic evaluation says now
	AutoWhy   string       `json:"auto_reason"`
	History   []gate.State `json:"history"`

	loc *time.Location
}

// BuildGateStatus combines the current state, the automatic verdict now and
// the history (newest first).
func BuildGateStatus(st gate.State, verdict gate.Verdict, history []gate.State, loc *time.Location) GateStatus {
	g := GateStatus{Gate: gate.GateScaling, State: st.State, Mode: st.Mode, Source: st.Source, Reason: st.Reason,
		By: st.By, ModeUntil: st.ModeUntil, AutoState: verdict.State, AutoWhy: verdict.Reason, History: history, loc: loc}
	if g.History == nil {
		g.History = []gate.State{}
	}
	if st.Seq > 0 {
		at := st.At
		g.Since = &at
	}
	return g
}

// Text writes the seed's layout, with who and the manual mode when set.
func (g GateStatus) Text(w io.Writer) error {
	var b strings.Builder
	b.WriteString("=== Scaling Gate Status ===\n\n")
	fmt.Fprintf(&b, "Status: %s\n", strings.ToUpper(g.State))
	fmt.Fprintf(&b, "Reason: %s\n", g.Reason)
	if g.Mode != "" && g.Mode != gate.ModeAuto {
		until := ""
		if g.ModeUntil != nil {
			until = " until " + g.ModeUntil.In(g.loc).Format(time.DateTime)
		}
		fmt.Fprintf(&b, "Mode: manual %s%s (by %s)\n", g.Mode, until, g.By)
		fmt.Fprintf(&b, "Automatic evaluation: %s - %s\n", strings.ToUpper(g.AutoState), g.AutoWhy)
	}
	if g.Since != nil {
		fmt.Fprintf(&b, "Since: %s\n", g.Since.In(g.loc).Format(time.DateTime))
	}
	b.WriteString("\n=== Recent History ===\n\n")
	writeHistory(&b, g.History, g.loc)
	_, err := io.WriteString(w, b.String())
	return err
}

// History is `audit gate history`: gate-state events, newest first; as
// JSON, the array of events.
type History struct {
	events []gate.State
	loc    *time.Location
}

// NewHistory wraps events read from COST_GATE.
func NewHistory(events []gate.State, loc *time.Location) History {
	if events == nil {
		events = []gate.State{}
	}
	return History{events: events, loc: loc}
}

// MarshalJSON writes the events.
func (h History) MarshalJSON() ([]byte, error) { return json.Marshal(h.events) }

// Text writes one line per event.
func (h History) Text(w io.Writer) error {
	var b strings.Builder
	b.WriteString("=== Scaling Gate History ===\n\n")
	writeHistory(&b, h.events, h.loc)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeHistory: "2025-05-20 10:30:00: Deactivated - Below threshold", with
// "(manual enable by ops@host)" for a person's change.
func writeHistory(b *strings.Builder, h []gate.State, loc *time.Location) {
	if len(h) == 0 {
		b.WriteString("(no gate events yet)\n")
	}
	for _, e := range h {
		verb := "Deactivated"
		if e.State == gate.StateActive {
			verb = "Activated"
		}
		switch {
		case e.Seq == 1:
			verb = "Initialised " + e.State
		case e.Previous == e.State:
			verb = "Kept " + e.State
		}
		who := ""
		if e.Source == gate.SourceManual {
			action := map[string]string{gate.ModeEnabled: "manual enable", gate.ModeDisabled: "manual disable", gate.ModeAuto: "set back to auto"}[e.Mode]
			who = fmt.Sprintf(" (%s by %s)", action, e.By)
		}
		fmt.Fprintf(b, "%s: %s%s - %s\n", e.At.In(loc).Format(time.DateTime), verb, who, e.Reason)
	}
}

// HistoryLine writes one event as a history line (for gate watch --format text).
func HistoryLine(w io.Writer, e gate.State, loc *time.Location) error {
	var b strings.Builder
	writeHistory(&b, []gate.State{e}, loc)
	_, err := io.WriteString(w, b.String())
	return err
}
