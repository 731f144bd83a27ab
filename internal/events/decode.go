package events

import (
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// ErrInvalidEvent is matched (errors.Is) by every DecodeError.
var ErrInvalidEvent = errors.New("invalid cost event")

// Reason says why an event was rejected. It is the last token of the
// dead-letter subject costs.dlq.<reason>, so it is a stable, lower-case word.
type Reason string

// Every reason Decode can give.
const (
	ReasonTooLarge          Reason = "too_large"
	ReasonMalformedJSON     Reason = "malformed_json"
	ReasonInvalidUTF8       Reason = "invalid_utf8"
	ReasonNotObject         Reason = "not_object"
	ReasonDuplicateKey      Reason = "duplicate_key"
	ReasonMissingField      Reason = "missing_field"
	ReasonInvalidEventID    Reason = "invalid_event_id"
	ReasonInvalidTS         Reason = "invalid_ts"
	ReasonInvalidService    Reason = "invalid_service"
	ReasonInvalidOperation  Reason = "invalid_operation"
	ReasonInvalidCost       Reason = "invalid_cost"
	ReasonInvalidUnits      Reason = "invalid_units"
	ReasonInvalidUnit       Reason = "invalid_unit"
	ReasonInvalidAttributes Reason = "invalid_attributes"
)

// Reasons lists every Reason, for metrics that want all label values up front.
var Reasons = []Reason{
	ReasonTooLarge, ReasonMalformedJSON, ReasonInvalidUTF8, ReasonNotObject,
	ReasonDuplicateKey, ReasonMissingField, ReasonInvalidEventID, ReasonInvalidTS,
	ReasonInvalidService, ReasonInvalidOperation, ReasonInvalidCost, ReasonInvalidUnits,
	ReasonInvalidUnit, ReasonInvalidAttributes,
}

// DecodeError is why a payload is not a valid cost event.
type DecodeError struct {
	Reason Reason
	Field  string // the offending field, if any
	Msg    string
}

func (e *DecodeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Reason, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Msg)
}

// Is makes errors.Is(err, ErrInvalidEvent) true.
func (e *DecodeError) Is(target error) bool { return target == ErrInvalidEvent }

// Result of Decode beyond the event itself.
type DecodeInfo struct {
	UnknownFields int // top-level fields ignored because the contract does not know them
}

// Field bits, to find missing and duplicate fields without a map.
const (
	fEventID = 1 << iota
	fTS
	fService
	fOperation
	fCost
	fUnits
	fUnit
	fAttributes
	fRequired = fEventID | fTS | fService | fOperation | fCost
)

// Decode parses and validates one cost event payload against every rule of
// schemas/cost_event.schema.json, plus the ones JSON Schema cannot say: the
// payload size, duplicate keys, valid UTF-8 (no lone surrogate escapes) and a
// ts that ClickHouse's DateTime can store. It never uses floating point: the
// cost is read digit by digit into an exact decimal.
//
// A syntax error anywhere wins over a field error, so a truncated payload is
// always reported as malformed_json.
func Decode(data []byte) (Event, DecodeInfo, error) {
	var ev Event
	var info DecodeInfo
	if len(data) > MaxPayloadBytes {
		return ev, info, &DecodeError{Reason: ReasonTooLarge, Msg: fmt.Sprintf("payload is %d bytes, at most %d", len(data), MaxPayloadBytes)}
	}
	d := decoder{data: data}
	d.ws()
	if d.pos >= len(d.data) {
		return ev, info, &DecodeError{Reason: ReasonMalformedJSON, Msg: "empty payload"}
	}
	if d.data[d.pos] != '{' {
		if err := d.skipValue(); err != nil {
			return ev, info, err
		}
		if err := d.end(); err != nil {
			return ev, info, err
		}
		return ev, info, &DecodeError{Reason: ReasonNotObject, Msg: "payload must be one JSON object"}
	}
	d.pos++
	var seen uint
	var unknown []string
	for first := true; ; first = false {
		d.ws()
		if d.pos >= len(d.data) {
			return ev, info, d.syntax("unterminated object")
		}
		if d.data[d.pos] == '}' && first {
			d.pos++
			break
		}
		if d.data[d.pos] != '"' {
			return ev, info, d.syntax("expected a quoted key")
		}
		kb, err := d.strBytes()
		if err != nil {
			return ev, info, err
		}
		if err := d.colon(); err != nil {
			return ev, info, err
		}
		bit, key := fieldBit(kb)
		if bit == 0 {
			key = string(kb)
			for _, k := range unknown {
				if k == key {
					d.fail(&DecodeError{Reason: ReasonDuplicateKey, Field: key, Msg: "key appears twice"})
				}
			}
			unknown = append(unknown, key)
			info.UnknownFields++
			if err := d.skipValue(); err != nil {
				return ev, info, err
			}
		} else {
			if seen&bit != 0 {
				d.fail(&DecodeError{Reason: ReasonDuplicateKey, Field: key, Msg: "key appears twice"})
			}
			seen |= bit
			if err := d.field(&ev, bit, key); err != nil {
				return ev, info, err
			}
		}
		d.ws()
		if d.pos >= len(d.data) {
			return ev, info, d.syntax("unterminated object")
		}
		if d.data[d.pos] == ',' {
			d.pos++
			continue
		}
		if d.data[d.pos] == '}' {
			d.pos++
			break
		}
		return ev, info, d.syntax("expected ',' or '}'")
	}
	if err := d.end(); err != nil {
		return ev, info, err
	}
	if d.err != nil {
		return ev, info, d.err
	}
	if missing := fRequired &^ seen; missing != 0 {
		return ev, info, &DecodeError{Reason: ReasonMissingField, Field: fieldName(missing), Msg: "required field is missing"}
	}
	return ev, info, nil
}

// fieldBit names a contract field by its key, without allocating.
func fieldBit(key []byte) (uint, string) {
	switch string(key) {
	case "event_id":
		return fEventID, "event_id"
	case "ts":
		return fTS, "ts"
	case "service":
		return fService, "service"
	case "operation":
		return fOperation, "operation"
	case "cost_usd":
		return fCost, "cost_usd"
	case "units":
		return fUnits, "units"
	case "unit":
		return fUnit, "unit"
	case "attributes":
		return fAttributes, "attributes"
	}
	return 0, ""
}

// fieldName names the lowest bit set in bits, in contract order.
func fieldName(bits uint) string {
	for _, f := range []struct {
		bit  uint
		name string
	}{{fEventID, "event_id"}, {fTS, "ts"}, {fService, "service"}, {fOperation, "operation"}, {fCost, "cost_usd"}} {
		if bits&f.bit != 0 {
			return f.name
		}
	}
	return ""
}

// decoder is a strict single-pass JSON reader for the one flat object the
// contract allows. Syntax errors stop it at once; the first rule error is
// kept in err while it reads on, so that later syntax errors still win.
type decoder struct {
	data []byte
	pos  int
	err  *DecodeError
}

func (d *decoder) fail(e *DecodeError) {
	if d.err == nil {
		d.err = e
	}
}

func (d *decoder) syntax(msg string) *DecodeError {
	return &DecodeError{Reason: ReasonMalformedJSON, Msg: fmt.Sprintf("%s at byte %d", msg, d.pos)}
}

func (d *decoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) end() error {
	d.ws()
	if d.pos != len(d.data) {
		return d.syntax("trailing data after the object")
	}
	return nil
}

func (d *decoder) colon() error {
	d.ws()
	if d.pos >= len(d.data) || d.data[d.pos] != ':' {
		return d.syntax("expected ':'")
	}
	d.pos++
	d.ws()
	return nil
}

// Kinds of value, as kind sees them.
const (
	kindOther byte = iota
	kindString
	kindNumber
	kindObject
)

// kind of the value at pos, without consuming it.
func (d *decoder) kind() byte {
	if d.pos >= len(d.data) {
		return kindOther
	}
	switch c := d.data[d.pos]; {
	case c == '"':
		return kindString
	case c == '-' || (c >= '0' && c <= '9'):
		return kindNumber
	case c == '{':
		return kindObject
	}
	return kindOther
}

func (d *decoder) field(ev *Event, bit uint, key string) error {
	switch bit {
	case fEventID, fTS, fService, fOperation, fUnit:
		if d.kind() != kindString {
			d.fail(typeError(bit, key, "must be a string"))
			return d.skipValue()
		}
		b, err := d.strBytes()
		if err != nil {
			return err
		}
		d.stringField(ev, bit, key, b)
		return nil
	case fCost:
		switch d.kind() {
		case kindString:
			s, err := d.strBytes()
			if err != nil {
				return err
			}
			nanos, ok := parseCostString(s)
			if !ok {
				d.fail(&DecodeError{Reason: ReasonInvalidCost, Field: key, Msg: fmt.Sprintf("%q is not a plain decimal like \"0.0125\" (>= 0, < 1e9, at most 9 decimals)", truncate(string(s)))})
				return nil
			}
			ev.CostUSD = decimal.New(nanos, -CostScale)
			return nil
		case kindNumber:
			num, err := d.number()
			if err != nil {
				return err
			}
			nanos, ok := parseCostNumber(num)
			if !ok {
				d.fail(&DecodeError{Reason: ReasonInvalidCost, Field: key, Msg: fmt.Sprintf("%s is not >= 0, < 1e9 with at most 9 decimals", truncate(string(num)))})
				return nil
			}
			ev.CostUSD = decimal.New(nanos, -CostScale)
			return nil
		default:
			d.fail(&DecodeError{Reason: ReasonInvalidCost, Field: key, Msg: "must be a decimal string or a number"})
			return d.skipValue()
		}
	case fUnits:
		if d.kind() != kindNumber {
			d.fail(&DecodeError{Reason: ReasonInvalidUnits, Field: key, Msg: "must be a non-negative integer"})
			return d.skipValue()
		}
		num, err := d.number()
		if err != nil {
			return err
		}
		u, ok := parseUnits(num)
		if !ok {
			d.fail(&DecodeError{Reason: ReasonInvalidUnits, Field: key, Msg: fmt.Sprintf("%s is not an integer from 0 to 2^64-1", truncate(string(num)))})
			return nil
		}
		ev.Units = u
		return nil
	case fAttributes:
		if d.kind() != kindObject {
			d.fail(&DecodeError{Reason: ReasonInvalidAttributes, Field: key, Msg: "must be an object of strings"})
			return d.skipValue()
		}
		return d.attributes(ev)
	}
	return nil
}

func typeError(bit uint, key, msg string) *DecodeError {
	return &DecodeError{Reason: fieldReason(bit), Field: key, Msg: msg}
}

func fieldReason(bit uint) Reason {
	switch bit {
	case fEventID:
		return ReasonInvalidEventID
	case fTS:
		return ReasonInvalidTS
	case fService:
		return ReasonInvalidService
	case fOperation:
		return ReasonInvalidOperation
	case fUnit:
		return ReasonInvalidUnit
	}
	return ReasonMalformedJSON
}

func (d *decoder) stringField(ev *Event, bit uint, key string, b []byte) {
	switch bit {
	case fEventID:
		s := string(b)
		if n := utf8.RuneCountInString(s); n < 1 || n > MaxEventIDLen {
			d.fail(typeError(bit, key, fmt.Sprintf("must be 1 to %d characters, is %d", MaxEventIDLen, n)))
		} else if hasControl(s) {
			d.fail(typeError(bit, key, "must not contain control characters"))
		}
		ev.EventID = s
	case fTS:
		t, msg := parseTS(b)
		if msg != "" {
			d.fail(typeError(bit, key, fmt.Sprintf("%q: %s", truncate(string(b)), msg)))
		}
		ev.TS = t
	case fService, fOperation:
		s := intern(b)
		if !nameOK(s) {
			d.fail(typeError(bit, key, fmt.Sprintf("%q must match ^[a-z0-9][a-z0-9_.-]{0,63}$", truncate(s))))
		}
		if bit == fService {
			ev.Service = s
		} else {
			ev.Operation = s
		}
	case fUnit:
		s := intern(b)
		if n := utf8.RuneCountInString(s); n > MaxUnitLen {
			d.fail(typeError(bit, key, fmt.Sprintf("must be at most %d characters, is %d", MaxUnitLen, n)))
		} else if hasControl(s) {
			d.fail(typeError(bit, key, "must not contain control characters"))
		}
		ev.Unit = s
	}
}

func (d *decoder) attributes(ev *Event) error {
	d.pos++ // '{'
	for first := true; ; first = false {
		d.ws()
		if d.pos >= len(d.data) {
			return d.syntax("unterminated attributes object")
		}
		if d.data[d.pos] == '}' && first {
			d.pos++
			return nil
		}
		if d.data[d.pos] != '"' {
			return d.syntax("expected a quoted key")
		}
		kb, err := d.strBytes()
		if err != nil {
			return err
		}
		k := intern(kb)
		if err := d.colon(); err != nil {
			return err
		}
		var v string
		if d.kind() == kindString {
			vb, err := d.strBytes()
			if err != nil {
				return err
			}
			v = intern(vb)
		} else {
			d.fail(&DecodeError{Reason: ReasonInvalidAttributes, Field: "attributes." + truncate(k), Msg: "value must be a string"})
			if err := d.skipValue(); err != nil {
				return err
			}
		}
		d.attribute(ev, k, v)
		d.ws()
		if d.pos >= len(d.data) {
			return d.syntax("unterminated attributes object")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return nil
		default:
			return d.syntax("expected ',' or '}'")
		}
	}
}

func (d *decoder) attribute(ev *Event, k, v string) {
	field := func() string { return "attributes." + truncate(k) }
	for _, seen := range ev.AttrKeys {
		if seen == k {
			d.fail(&DecodeError{Reason: ReasonDuplicateKey, Field: field(), Msg: "key appears twice"})
		}
	}
	switch n := utf8.RuneCountInString(k); {
	case len(ev.AttrKeys) == MaxAttributes:
		d.fail(&DecodeError{Reason: ReasonInvalidAttributes, Field: "attributes", Msg: fmt.Sprintf("at most %d keys", MaxAttributes)})
	case n < 1 || n > MaxAttrKeyLen:
		d.fail(&DecodeError{Reason: ReasonInvalidAttributes, Field: field(), Msg: fmt.Sprintf("keys must be 1 to %d characters", MaxAttrKeyLen)})
	case utf8.RuneCountInString(v) > MaxAttrValueLen:
		d.fail(&DecodeError{Reason: ReasonInvalidAttributes, Field: field(), Msg: fmt.Sprintf("values must be at most %d characters", MaxAttrValueLen)})
	case hasControl(k) || hasControl(v):
		d.fail(&DecodeError{Reason: ReasonInvalidAttributes, Field: field(), Msg: "must not contain control characters"})
	}
	if ev.AttrKeys == nil {
		ev.AttrKeys, ev.AttrValues = make([]string, 0, 4), make([]string, 0, 4)
	}
	ev.AttrKeys = append(ev.AttrKeys, k)
	ev.AttrValues = append(ev.AttrValues, v)
}

// str reads a JSON string at pos (which is '"') and returns it decoded.
func (d *decoder) str() (string, error) {
	b, err := d.strBytes()
	return string(b), err
}

// strBytes reads a JSON string at pos (which is '"') and returns it decoded:
// plain ASCII without escapes (nearly every value) is a slice of the
// payload, so nothing is copied until the caller keeps it.
func (d *decoder) strBytes() ([]byte, error) {
	d.pos++
	start := d.pos
	// Fast path: plain ASCII without escapes.
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		if c == '"' {
			s := d.data[start:d.pos]
			d.pos++
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		d.pos++
	}
	buf := append([]byte(nil), d.data[start:d.pos]...)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return buf, nil
		case c < 0x20:
			return nil, d.syntax("raw control character in string")
		case c == '\\':
			if d.pos+1 >= len(d.data) {
				return nil, d.syntax("unterminated escape")
			}
			e := d.data[d.pos+1]
			d.pos += 2
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return nil, d.syntax("bad \\u escape")
				}
				if r >= 0xD800 && r < 0xDC00 { // high surrogate: a low one must follow
					if d.pos+1 < len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
						d.pos += 2
						lo, ok := d.hex4()
						if !ok {
							return nil, d.syntax("bad \\u escape")
						}
						if lo >= 0xDC00 && lo < 0xE000 {
							r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
							buf = utf8.AppendRune(buf, r)
							continue
						}
					}
					d.fail(&DecodeError{Reason: ReasonInvalidUTF8, Msg: "lone UTF-16 surrogate escape"})
					buf = utf8.AppendRune(buf, utf8.RuneError)
					continue
				}
				if r >= 0xDC00 && r < 0xE000 {
					d.fail(&DecodeError{Reason: ReasonInvalidUTF8, Msg: "lone UTF-16 surrogate escape"})
					r = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return nil, d.syntax("bad escape")
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			d.pos++
		default:
			r, n := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && n <= 1 {
				return nil, &DecodeError{Reason: ReasonInvalidUTF8, Msg: fmt.Sprintf("invalid UTF-8 at byte %d", d.pos)}
			}
			buf = append(buf, d.data[d.pos:d.pos+n]...)
			d.pos += n
		}
	}
	return nil, d.syntax("unterminated string")
}

func (d *decoder) hex4() (rune, bool) {
	if d.pos+4 > len(d.data) {
		return 0, false
	}
	var r rune
	for _, c := range d.data[d.pos : d.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	d.pos += 4
	return r, true
}

// number reads a JSON number at pos and returns its text.
func (d *decoder) number() ([]byte, error) {
	start := d.pos
	if d.pos < len(d.data) && d.data[d.pos] == '-' {
		d.pos++
	}
	switch {
	case d.pos < len(d.data) && d.data[d.pos] == '0':
		d.pos++
	case d.pos < len(d.data) && d.data[d.pos] >= '1' && d.data[d.pos] <= '9':
		d.digits()
	default:
		return nil, d.syntax("bad number")
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if d.digits() == 0 {
			return nil, d.syntax("bad number")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if d.digits() == 0 {
			return nil, d.syntax("bad number")
		}
	}
	return d.data[start:d.pos], nil
}

func (d *decoder) digits() int {
	n := 0
	for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
		d.pos++
		n++
	}
	return n
}

const maxDepth = 64

// skipValue checks and skips any JSON value.
func (d *decoder) skipValue() error { return d.skip(0) }

func (d *decoder) skip(depth int) error {
	if depth > maxDepth {
		return d.syntax("nested too deeply")
	}
	d.ws()
	if d.pos >= len(d.data) {
		return d.syntax("expected a value")
	}
	switch c := d.data[d.pos]; {
	case c == '"':
		_, err := d.str()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := d.number()
		return err
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		d.pos++
		var keys []string
		for first := true; ; first = false {
			d.ws()
			if d.pos < len(d.data) && d.data[d.pos] == closer && first {
				d.pos++
				return nil
			}
			if c == '{' {
				if d.pos >= len(d.data) || d.data[d.pos] != '"' {
					return d.syntax("expected a quoted key")
				}
				k, err := d.str()
				if err != nil {
					return err
				}
				for _, seen := range keys {
					if seen == k {
						d.fail(&DecodeError{Reason: ReasonDuplicateKey, Field: truncate(k), Msg: "key appears twice"})
					}
				}
				keys = append(keys, k)
				if err := d.colon(); err != nil {
					return err
				}
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			d.ws()
			if d.pos >= len(d.data) {
				return d.syntax("unterminated value")
			}
			if d.data[d.pos] == ',' {
				d.pos++
				continue
			}
			if d.data[d.pos] == closer {
				d.pos++
				return nil
			}
			return d.syntax("expected ',' or a closing bracket")
		}
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if len(d.data)-d.pos >= len(lit) && string(d.data[d.pos:d.pos+len(lit)]) == lit {
				d.pos += len(lit)
				return nil
			}
		}
		return d.syntax("unexpected character")
	}
}

// parseCostString reads ^(0|[1-9][0-9]{0,8})(\.[0-9]{1,9})?$ into
// nano-dollars, exactly.
func parseCostString(s []byte) (int64, bool) {
	i := 0
	var n int64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		n = n*10 + int64(s[i]-'0')
		i++
	}
	if i == 0 || i > MaxCostIntDigits || (i > 1 && s[0] == '0') {
		return 0, false
	}
	f := 0
	if i < len(s) {
		if s[i] != '.' {
			return 0, false
		}
		for i++; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' || f == CostScale {
				return 0, false
			}
			n = n*10 + int64(s[i]-'0')
			f++
		}
		if f == 0 {
			return 0, false
		}
	}
	for ; f < CostScale; f++ {
		n *= 10
	}
	return n, true
}

// exactNumber splits a JSON number's text into its significant digits
// (no leading or trailing zeros) and the power of ten they are scaled by:
// value = digits × 10^exp. exp saturates far beyond any limit checked here.
func exactNumber(num []byte) (neg bool, digits []byte, exp int64) {
	i := 0
	if num[0] == '-' {
		neg = true
		i++
	}
	var mant []byte
	var fracDigits int64
	inFrac := false
	for ; i < len(num); i++ {
		c := num[i]
		if c == '.' {
			inFrac = true
			continue
		}
		if c == 'e' || c == 'E' {
			break
		}
		mant = append(mant, c)
		if inFrac {
			fracDigits++
		}
	}
	var e int64
	if i < len(num) {
		i++
		eneg := false
		if num[i] == '+' || num[i] == '-' {
			eneg = num[i] == '-'
			i++
		}
		for ; i < len(num); i++ {
			if e < 1<<40 {
				e = e*10 + int64(num[i]-'0')
			}
		}
		if eneg {
			e = -e
		}
	}
	exp = e - fracDigits
	for len(mant) > 0 && mant[0] == '0' {
		mant = mant[1:]
	}
	for len(mant) > 0 && mant[len(mant)-1] == '0' {
		mant = mant[:len(mant)-1]
		exp++
	}
	return neg, mant, exp
}

// parseCostNumber returns the number in nano-dollars if it is a valid cost.
func parseCostNumber(num []byte) (int64, bool) {
	neg, digits, exp := exactNumber(num)
	if len(digits) == 0 {
		return 0, true // zero, or -0
	}
	if neg || exp < -CostScale || int64(len(digits))+exp > MaxCostIntDigits {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		n = n*10 + int64(c-'0')
	}
	for e := exp + CostScale; e > 0; e-- {
		n *= 10
	}
	return n, true
}

// parseUnits accepts any JSON number whose value is an integer in uint64,
// as JSON Schema's "integer" does (so 5.0 and 5e2 are integers).
func parseUnits(num []byte) (uint64, bool) {
	neg, digits, exp := exactNumber(num)
	if len(digits) == 0 {
		return 0, true
	}
	if neg || exp < 0 || int64(len(digits))+exp > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range digits {
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	for e := exp; e > 0; e-- {
		if n > (1<<64-1)/10 {
			return 0, false
		}
		n *= 10
	}
	return n, true
}

// nameOK: ^[a-z0-9][a-z0-9_.-]{0,63}$
func nameOK(s string) bool {
	if len(s) < 1 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// hasControl reports C0, DEL and C1 control characters.
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return true
		}
	}
	return false
}

// parseTS reads an RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM),
// 'T' and 'Z' in either case. It must exist in the calendar and fall in what
// ClickHouse's DateTime stores (1970-01-01 to 2106-02-07 UTC).
func parseTS(s []byte) (time.Time, string) {
	const layout = "dddd-dd-ddTdd:dd:dd"
	if len(s) < len(layout)+1 {
		return time.Time{}, "not an RFC 3339 date-time with offset, like 2026-05-20T10:30:00Z"
	}
	num := func(a, b int) int {
		n := 0
		for _, c := range s[a:b] {
			n = n*10 + int(c-'0')
		}
		return n
	}
	for i := 0; i < len(layout); i++ {
		c := s[i]
		switch layout[i] {
		case 'd':
			if c < '0' || c > '9' {
				return time.Time{}, "not an RFC 3339 date-time with offset, like 2026-05-20T10:30:00Z"
			}
		case 'T':
			if c != 'T' && c != 't' {
				return time.Time{}, "date and time must be separated by 'T'"
			}
		default:
			if c != layout[i] {
				return time.Time{}, "not an RFC 3339 date-time with offset, like 2026-05-20T10:30:00Z"
			}
		}
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	hour, minute, sec := num(11, 13), num(14, 16), num(17, 19)
	i := len(layout)
	nanos := 0
	if s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start < 9 {
				nanos = nanos*10 + int(s[i]-'0')
			}
			i++
		}
		if i == start {
			return time.Time{}, "a '.' must be followed by digits"
		}
		for k := i - start; k < 9; k++ {
			nanos *= 10
		}
	}
	var offset int
	switch {
	case i < len(s) && (s[i] == 'Z' || s[i] == 'z') && i+1 == len(s):
	case i+6 == len(s) && (s[i] == '+' || s[i] == '-') && s[i+3] == ':' &&
		isDigits(s[i+1:i+3]) && isDigits(s[i+4:i+6]):
		oh, om := num(i+1, i+3), num(i+4, i+6)
		if oh > 23 || om > 59 {
			return time.Time{}, "offset out of range"
		}
		offset = (oh*60 + om) * 60
		if s[i] == '-' {
			offset = -offset
		}
	case i == len(s):
		return time.Time{}, "missing offset: add Z or ±HH:MM"
	default:
		return time.Time{}, "bad offset: use Z or ±HH:MM"
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, "no such date or time"
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, time.UTC).Add(-time.Duration(offset) * time.Second)
	if u := t.Unix(); u < 0 || u > maxStorableUnixTS {
		return time.Time{}, "outside 1970-01-01 to 2106-02-07, what ClickHouse DateTime stores"
	}
	return t, ""
}

func isDigits(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return s[:max]
}

// Service, operation, unit and attribute names repeat across events: they
// are interned (up to a bound), so a batch holds one copy of each.
const (
	maxInterned   = 4096
	maxInternSize = 64
)

var interned = struct {
	sync.RWMutex
	m map[string]string
}{m: make(map[string]string, 256)}

func intern(b []byte) string {
	if len(b) > maxInternSize {
		return string(b)
	}
	interned.RLock()
	s, ok := interned.m[string(b)]
	interned.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	interned.Lock()
	if len(interned.m) < maxInterned {
		interned.m[s] = s
	}
	interned.Unlock()
	return s
}
