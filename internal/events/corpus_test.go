package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/shopspring/decimal"

	"github.com/spendgate/spendgate/internal/events"
)

// The corpus is shared by every implementation of the contract: a payload in
// valid/ must pass both the JSON Schema and events.Decode; one in invalid/
// must fail Decode with the reason manifest.json gives it and, unless it is
// marked go_only (a rule JSON Schema cannot express), fail the schema too.
const (
	corpusDir    = "../../testdata/events"
	schemaPath   = "../../schemas/cost_event.schema.json"
	schemaURL    = "https://spendgate.dev/schemas/cost_event.schema.json"
	minValid     = 12
	minInvalid   = 30
	manifestName = "manifest.json"
)

// manifestEntry says why a payload in invalid/ is invalid.
type manifestEntry struct {
	Reason events.Reason `json:"reason"`
	GoOnly bool          `json:"go_only"`
	Why    string        `json:"why"`
}

type corpusFile struct {
	name string
	data []byte
}

func compileSchema(tb testing.TB) *jsonschema.Schema {
	tb.Helper()
	f, err := os.Open(schemaPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		tb.Fatalf("%s: %v", schemaPath, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(schemaURL, doc); err != nil {
		tb.Fatal(err)
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		tb.Fatalf("compile %s: %v", schemaPath, err)
	}
	return sch
}

// schemaCheck is what a schema-validating publisher would say about data:
// nil if it is one JSON document the schema accepts.
func schemaCheck(sch *jsonschema.Schema, data []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not one JSON document: %w", err)
	}
	return sch.Validate(doc)
}

func readCorpus(tb testing.TB, kind string) []corpusFile {
	tb.Helper()
	dir := filepath.Join(corpusDir, kind)
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var files []corpusFile
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".json" {
			tb.Fatalf("%s/%s: the corpus holds only .json files", dir, e.Name())
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, corpusFile{e.Name(), data})
	}
	return files
}

func readManifest(tb testing.TB) map[string]manifestEntry {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(corpusDir, manifestName))
	if err != nil {
		tb.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m map[string]manifestEntry
	if err := dec.Decode(&m); err != nil {
		tb.Fatalf("%s: %v", manifestName, err)
	}
	return m
}

// decodeReason returns the DecodeError reason of err, failing the test if
// err is not a *events.DecodeError that matches events.ErrInvalidEvent.
func decodeReason(tb testing.TB, err error) events.Reason {
	tb.Helper()
	var de *events.DecodeError
	if !errors.As(err, &de) {
		tb.Fatalf("Decode error %v is a %T, want *events.DecodeError", err, err)
	}
	if !errors.Is(err, events.ErrInvalidEvent) {
		tb.Fatalf("errors.Is(%v, ErrInvalidEvent) = false", err)
	}
	if !slices.Contains(events.Reasons, de.Reason) {
		tb.Fatalf("reason %q is not in events.Reasons", de.Reason)
	}
	return de.Reason
}

func TestCorpusValid(t *testing.T) {
	sch := compileSchema(t)
	files := readCorpus(t, "valid")
	if len(files) < minValid {
		t.Fatalf("valid/ holds %d files, want at least %d", len(files), minValid)
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			if _, _, err := events.Decode(f.data); err != nil {
				t.Errorf("Decode: %v", err)
			}
			if err := schemaCheck(sch, f.data); err != nil {
				t.Errorf("schema: %v", err)
			}
		})
	}
}

func TestCorpusInvalid(t *testing.T) {
	sch := compileSchema(t)
	files := readCorpus(t, "invalid")
	manifest := readManifest(t)
	if len(manifest) < minInvalid {
		t.Fatalf("%s lists %d payloads, want at least %d", manifestName, len(manifest), minInvalid)
	}
	onDisk := make(map[string]bool, len(files))
	for _, f := range files {
		onDisk[f.name] = true
		if _, ok := manifest[f.name]; !ok {
			t.Errorf("invalid/%s is not in %s", f.name, manifestName)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(manifest)) {
		e := manifest[name]
		if !onDisk[name] {
			t.Errorf("%s lists %s, which is not in invalid/", manifestName, name)
		}
		if !slices.Contains(events.Reasons, e.Reason) {
			t.Errorf("%s: %s: reason %q is not one Decode gives", manifestName, name, e.Reason)
		}
		if strings.TrimSpace(e.Why) == "" {
			t.Errorf("%s: %s: empty why", manifestName, name)
		}
	}
	for _, f := range files {
		e, ok := manifest[f.name]
		if !ok {
			continue // reported above
		}
		t.Run(f.name, func(t *testing.T) {
			_, _, err := events.Decode(f.data)
			if err == nil {
				t.Fatalf("Decode accepted it (%s), want %s", e.Why, e.Reason)
			}
			if got := decodeReason(t, err); got != e.Reason {
				t.Errorf("Decode reason = %s, want %s (%s); error: %v", got, e.Reason, e.Why, err)
			}
			// go_only means exactly "the schema cannot see it": a go_only
			// payload the schema rejects is mislabelled, and so is a
			// schema-expressible one it accepts.
			serr := schemaCheck(sch, f.data)
			switch {
			case !e.GoOnly && serr == nil:
				t.Errorf("schema accepted it, want a rejection (%s)", e.Why)
			case e.GoOnly && serr != nil:
				t.Errorf("go_only, yet the schema rejects it too (mark it go_only: false): %v", serr)
			case e.GoOnly:
				t.Logf("go_only: the schema accepts it; only Decode rejects it (%s)", e.Why)
			}
		})
	}
}

// TestPayloadSize checks the 64 KiB limit on generated payloads, rather than
// committing one to the corpus: at the limit is fine, one byte over is not,
// whatever the schema says about the content.
func TestPayloadSize(t *testing.T) {
	sch := compileSchema(t)
	sized := func(n int) []byte {
		head := `{"event_id":"evt-big","ts":"2026-05-20T10:30:00Z","service":"openai","operation":"chat_completion","cost_usd":"0.0125","padding":"`
		tail := `"}`
		return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
	}
	atLimit := sized(events.MaxPayloadBytes)
	if len(atLimit) != 65536 {
		t.Fatalf("len = %d, want 65536", len(atLimit))
	}
	if _, info, err := events.Decode(atLimit); err != nil {
		t.Errorf("Decode(%d bytes): %v", len(atLimit), err)
	} else if info.UnknownFields != 1 {
		t.Errorf("UnknownFields = %d, want 1", info.UnknownFields)
	}
	if err := schemaCheck(sch, atLimit); err != nil {
		t.Errorf("schema(%d bytes): %v", len(atLimit), err)
	}

	over := sized(events.MaxPayloadBytes + 1)
	_, _, err := events.Decode(over)
	if err == nil {
		t.Fatalf("Decode accepted %d bytes", len(over))
	}
	if got, want := decodeReason(t, err), events.ReasonTooLarge; got != want {
		t.Errorf("Decode(%d bytes) reason = %s, want %s", len(over), got, want)
	}
	if err := schemaCheck(sch, over); err != nil {
		t.Errorf("schema rejects the %d-byte payload (%v); the size rule is meant to be Go-only", len(over), err)
	}

	// Size is checked before anything else, even syntax.
	garbage := bytes.Repeat([]byte("{"), events.MaxPayloadBytes+1)
	if _, _, err := events.Decode(garbage); err == nil || decodeReason(t, err) != events.ReasonTooLarge {
		t.Errorf("Decode(%d bytes of '{') = %v, want too_large", len(garbage), err)
	}
}

// TestSchemaDocument checks the schema's shape and that its limits are the
// ones the Go decoder enforces.
func TestSchemaDocument(t *testing.T) {
	data, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schema      string   `json:"$schema"`
		ID          string   `json:"$id"`
		Title       string   `json:"title"`
		Description string   `json:"description"`
		Comment     string   `json:"$comment"`
		Type        string   `json:"type"`
		Required    []string `json:"required"`
		Properties  map[string]struct {
			Description string `json:"description"`
			MinLength   *int   `json:"minLength"`
			MaxLength   *int   `json:"maxLength"`
			Pattern     string `json:"pattern"`
			MaxProps    *int   `json:"maxProperties"`
			PropNames   struct {
				MinLength *int   `json:"minLength"`
				MaxLength *int   `json:"maxLength"`
				Pattern   string `json:"pattern"`
			} `json:"propertyNames"`
			AdditionalProperties struct {
				MaxLength *int   `json:"maxLength"`
				Pattern   string `json:"pattern"`
			} `json:"additionalProperties"`
		} `json:"properties"`
		AdditionalProperties *bool `json:"additionalProperties"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if got, want := doc.Schema, "https://json-schema.org/draft/2020-12/schema"; got != want {
		t.Errorf("$schema = %q, want %q", got, want)
	}
	if got, want := doc.ID, schemaURL; got != want {
		t.Errorf("$id = %q, want %q", got, want)
	}
	if doc.Title == "" || doc.Description == "" {
		t.Error("title and description are required")
	}
	for _, rule := range []string{"65536", "duplicate", "UTF-8", "surrogate", "1970-01-01T00:00:00Z", "2106-02-07T06:28:15Z", "64 levels"} {
		if !strings.Contains(doc.Comment, rule) {
			t.Errorf("$comment does not mention the Go-only rule %q", rule)
		}
	}
	if doc.Type != "object" {
		t.Errorf("type = %q, want object", doc.Type)
	}
	if want := []string{"event_id", "ts", "service", "operation", "cost_usd"}; !slices.Equal(doc.Required, want) {
		t.Errorf("required = %v, want %v", doc.Required, want)
	}
	if doc.AdditionalProperties == nil || !*doc.AdditionalProperties {
		t.Error("additionalProperties must be true: unknown fields are ignored, not rejected")
	}
	for _, name := range []string{"event_id", "ts", "service", "operation", "cost_usd", "units", "unit", "attributes"} {
		if p, ok := doc.Properties[name]; !ok || p.Description == "" {
			t.Errorf("property %s is missing or has no description", name)
		}
	}
	if len(doc.Properties) != 8 {
		t.Errorf("%d properties, want 8", len(doc.Properties))
	}
	eq := func(what string, got *int, want int) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("%s = %v, want %d (the Go limit)", what, got, want)
		}
	}
	p := doc.Properties
	eq("event_id.minLength", p["event_id"].MinLength, 1)
	eq("event_id.maxLength", p["event_id"].MaxLength, events.MaxEventIDLen)
	eq("unit.maxLength", p["unit"].MaxLength, events.MaxUnitLen)
	eq("attributes.maxProperties", p["attributes"].MaxProps, events.MaxAttributes)
	eq("attributes.propertyNames.minLength", p["attributes"].PropNames.MinLength, 1)
	eq("attributes.propertyNames.maxLength", p["attributes"].PropNames.MaxLength, events.MaxAttrKeyLen)
	eq("attributes.additionalProperties.maxLength", p["attributes"].AdditionalProperties.MaxLength, events.MaxAttrValueLen)
	name := fmt.Sprintf("^[a-z0-9][a-z0-9_.-]{0,%d}$", events.MaxNameLen-1)
	for _, f := range []string{"service", "operation"} {
		if got := p[f].Pattern; got != name {
			t.Errorf("%s.pattern = %q, want %q", f, got, name)
		}
	}
	const noControl = "[^\u0000-\u001f\u007f-\u009f]"
	for what, got := range map[string]string{
		"event_id.pattern":                        p["event_id"].Pattern,
		"unit.pattern":                            p["unit"].Pattern,
		"attributes.propertyNames.pattern":        p["attributes"].PropNames.Pattern,
		"attributes.additionalProperties.pattern": p["attributes"].AdditionalProperties.Pattern,
	} {
		if !strings.Contains(got, noControl) {
			t.Errorf("%s = %q, want the no-control-character class %q", what, got, noControl)
		}
	}
}

func TestDecodeValues(t *testing.T) {
	const base = `"event_id":"evt-1","service":"openai","operation":"chat_completion"`
	tests := []struct {
		name    string
		payload string
		want    events.Event
		cost    string // decimal.String of the cost
		unknown int
	}{{
		name: "all fields, offset, attribute order kept",
		payload: `{"event_id":"9f1c","ts":"2026-05-20T16:00:00.5+05:30","service":"openai","operation":"chat_completion",
			"cost_usd":"0.004250000","units":1700,"unit":"tokens","x":{"y":[1,2]},
			"attributes":{"zeta":"1","alpha":"2","mid":"3"},"z":null}`,
		want: events.Event{
			EventID: "9f1c", TS: time.Date(2026, 5, 20, 10, 30, 0, 500_000_000, time.UTC),
			Service: "openai", Operation: "chat_completion", CostUSD: decimal.RequireFromString("0.00425"),
			Units: 1700, Unit: "tokens",
			AttrKeys: []string{"zeta", "alpha", "mid"}, AttrValues: []string{"1", "2", "3"},
		},
		cost:    "0.00425",
		unknown: 2,
	}, {
		name:    "cost as an exponent number, units 5.0, negative offset",
		payload: `{` + base + `,"ts":"2026-05-20T06:30:00-04:00","cost_usd":1e-3,"units":5.0}`,
		want: events.Event{
			EventID: "evt-1", TS: time.Date(2026, 5, 20, 10, 30, 0, 0, time.UTC),
			Service: "openai", Operation: "chat_completion", CostUSD: decimal.New(1, -3), Units: 5,
		},
		cost: "0.001",
	}, {
		name:    "max cost as a string",
		payload: `{` + base + `,"ts":"2026-05-20T10:30:00Z","cost_usd":"999999999.999999999"}`,
		want: events.Event{
			EventID: "evt-1", TS: time.Date(2026, 5, 20, 10, 30, 0, 0, time.UTC),
			Service: "openai", Operation: "chat_completion", CostUSD: decimal.New(999_999_999_999_999_999, -9),
		},
		cost: "999999999.999999999",
	}, {
		name:    "max cost as a number is not rounded to 1e9",
		payload: `{` + base + `,"ts":"2026-05-20T10:30:00Z","cost_usd":999999999.999999999}`,
		want: events.Event{
			EventID: "evt-1", TS: time.Date(2026, 5, 20, 10, 30, 0, 0, time.UTC),
			Service: "openai", Operation: "chat_completion", CostUSD: decimal.New(999_999_999_999_999_999, -9),
		},
		cost: "999999999.999999999",
	}, {
		name:    "fraction beyond 9 digits truncated, lower-case t and z, -0 cost, max units",
		payload: `{` + base + `,"ts":"2106-02-07t06:28:15.123456789999z","cost_usd":-0,"units":18446744073709551615}`,
		want: events.Event{
			EventID: "evt-1", TS: time.Date(2106, 2, 7, 6, 28, 15, 123_456_789, time.UTC),
			Service: "openai", Operation: "chat_completion", CostUSD: decimal.Zero, Units: 1<<64 - 1,
		},
		cost: "0",
	}, {
		name:    "escapes decoded, escaped key recognised",
		payload: `{"event\u005fid":"caf\u00e9 \ud83d\ude00 \/\"","ts":"1970-01-01T00:00:00Z","service":"openai","operation":"chat_completion","cost_usd":"0","attributes":{"k\u00e9y":"v\u00e4l"}}`,
		want: events.Event{
			EventID: "café 😀 /\"", TS: time.Unix(0, 0).UTC(),
			Service: "openai", Operation: "chat_completion", CostUSD: decimal.Zero,
			AttrKeys: []string{"kéy"}, AttrValues: []string{"väl"},
		},
		cost: "0",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, info, err := events.Decode([]byte(tt.payload))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := eventDiff(got, tt.want, true); diff != "" {
				t.Error(diff)
			}
			if got.TS.Location() != time.UTC {
				t.Errorf("TS location = %v, want UTC", got.TS.Location())
			}
			if s := got.CostUSD.String(); s != tt.cost {
				t.Errorf("CostUSD.String() = %q, want %q", s, tt.cost)
			}
			if info.UnknownFields != tt.unknown {
				t.Errorf("UnknownFields = %d, want %d", info.UnknownFields, tt.unknown)
			}
		})
	}
}

// TestDecodePrecedence pins which reason wins when a payload breaks several
// rules: a syntax error anywhere, then the first rule broken in payload
// order, then a missing field.
func TestDecodePrecedence(t *testing.T) {
	tests := []struct {
		name, payload string
		reason        events.Reason
		field         string
	}{
		{"syntax error after a field error", `{"event_id":"","ts":`, events.ReasonMalformedJSON, ""},
		{"first field error wins", `{"service":"BAD","event_id":"","cost_usd":-1}`, events.ReasonInvalidService, "service"},
		{"field error beats missing field", `{"cost_usd":"x"}`, events.ReasonInvalidCost, "cost_usd"},
		{"first missing field in contract order", `{"cost_usd":"1","service":"a","operation":"b"}`, events.ReasonMissingField, "event_id"},
		{"duplicate before a later field error", `{"unit":"a","unit":"b","units":-1}`, events.ReasonDuplicateKey, "unit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := events.Decode([]byte(tt.payload))
			if err == nil {
				t.Fatal("Decode accepted it")
			}
			var de *events.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is a %T", err, err)
			}
			if de.Reason != tt.reason || de.Field != tt.field {
				t.Errorf("Decode = %s/%q (%v), want %s/%q", de.Reason, de.Field, err, tt.reason, tt.field)
			}
		})
	}
}

// eventDiff describes how got differs from want, or returns "". With
// ordered false, attributes are compared as a set of pairs.
func eventDiff(got, want events.Event, ordered bool) string {
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
	if got.EventID != want.EventID {
		add("EventID = %q, want %q", got.EventID, want.EventID)
	}
	if !got.TS.Equal(want.TS) {
		add("TS = %v, want %v", got.TS, want.TS)
	}
	if got.Service != want.Service || got.Operation != want.Operation {
		add("Service/Operation = %q/%q, want %q/%q", got.Service, got.Operation, want.Service, want.Operation)
	}
	if !got.CostUSD.Equal(want.CostUSD) {
		add("CostUSD = %s, want %s", got.CostUSD, want.CostUSD)
	}
	if got.Units != want.Units || got.Unit != want.Unit {
		add("Units/Unit = %d/%q, want %d/%q", got.Units, got.Unit, want.Units, want.Unit)
	}
	if len(got.AttrKeys) != len(got.AttrValues) {
		add("%d attribute keys but %d values", len(got.AttrKeys), len(got.AttrValues))
	}
	if ordered {
		if !slices.Equal(got.AttrKeys, want.AttrKeys) || !slices.Equal(got.AttrValues, want.AttrValues) {
			add("attributes = %q:%q, want %q:%q", got.AttrKeys, got.AttrValues, want.AttrKeys, want.AttrValues)
		}
	} else if g, w := attrMap(got), attrMap(want); !maps.Equal(g, w) || len(g) != len(got.AttrKeys) {
		add("attributes = %q, want %q", g, w)
	}
	return strings.Join(d, "; ")
}

func attrMap(e events.Event) map[string]string {
	m := make(map[string]string, len(e.AttrKeys))
	for i, k := range e.AttrKeys {
		if i < len(e.AttrValues) {
			m[k] = e.AttrValues[i]
		}
	}
	return m
}

var (
	nameRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
	costCeiling = decimal.New(1, 9)
)

// checkAccepted checks what every accepted event must satisfy.
func checkAccepted(t *testing.T, ev events.Event) {
	t.Helper()
	for _, s := range append([]string{ev.EventID, ev.Service, ev.Operation, ev.Unit}, append(ev.AttrKeys, ev.AttrValues...)...) {
		if !utf8.ValidString(s) {
			t.Fatalf("accepted invalid UTF-8 %q", s)
		}
	}
	if n := utf8.RuneCountInString(ev.EventID); n < 1 || n > events.MaxEventIDLen {
		t.Fatalf("accepted event_id of %d characters", n)
	}
	if !nameRE.MatchString(ev.Service) || !nameRE.MatchString(ev.Operation) {
		t.Fatalf("accepted service/operation %q/%q", ev.Service, ev.Operation)
	}
	if ev.TS.Location() != time.UTC || ev.TS.Unix() < 0 || ev.TS.Unix() > 1<<32-1 {
		t.Fatalf("accepted ts %v", ev.TS)
	}
	if ev.CostUSD.Sign() < 0 || !ev.CostUSD.LessThan(costCeiling) || !ev.CostUSD.Truncate(events.CostScale).Equal(ev.CostUSD) {
		t.Fatalf("accepted cost %s", ev.CostUSD)
	}
	if len(ev.AttrKeys) > events.MaxAttributes || len(ev.AttrKeys) != len(ev.AttrValues) {
		t.Fatalf("accepted %d attribute keys, %d values", len(ev.AttrKeys), len(ev.AttrValues))
	}
}

// FuzzDecode: Decode never panics, every rejection is a DecodeError with a
// known reason, every accepted payload also passes the schema (Decode is the
// stricter of the two), and an accepted event survives MarshalJSON and a
// second Decode unchanged. MarshalJSON writes attributes from a Go map, so
// their order is compared as a set: JSON objects are unordered.
func FuzzDecode(f *testing.F) {
	for _, kind := range []string{"valid", "invalid"} {
		for _, c := range readCorpus(f, kind) {
			f.Add(c.data)
		}
	}
	sch := compileSchema(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, _, err := events.Decode(data)
		if err != nil {
			decodeReason(t, err)
			return
		}
		checkAccepted(t, ev)
		if err := schemaCheck(sch, data); err != nil {
			t.Fatalf("Decode accepted %q but the schema rejects it: %v", data, err)
		}
		out, err := ev.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON: %v", err)
		}
		again, info, err := events.Decode(out)
		if err != nil {
			t.Fatalf("Decode(MarshalJSON()) = %v\ninput:      %q\nre-encoded: %s", err, data, out)
		}
		if info.UnknownFields != 0 {
			t.Fatalf("re-encoded event has %d unknown fields: %s", info.UnknownFields, out)
		}
		if diff := eventDiff(again, ev, false); diff != "" {
			t.Fatalf("round trip changed the event: %s\ninput:      %q\nre-encoded: %s", diff, data, out)
		}
	})
}
