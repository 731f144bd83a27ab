package deploy_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// A selector is one vector selector of a PromQL expression: a metric name
// and its label matchers.
type selector struct {
	Name     string
	Matchers []matcher
}

type matcher struct {
	Label, Op, Value string
}

func (s selector) String() string {
	var b strings.Builder
	b.WriteString(s.Name)
	if len(s.Matchers) > 0 {
		b.WriteByte('{')
		for i, m := range s.Matchers {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s%s%q", m.Label, m.Op, m.Value)
		}
		b.WriteByte('}')
	}
	return b.String()
}

// Words that are never metric names: aggregations, binary and set
// operators, modifiers, and number literals spelt as words. PromQL keywords
// are case-insensitive.
var (
	promqlGrouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true}
	promqlKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true,
		"offset": true, "atan2": true, "inf": true, "nan": true,
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
		"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
		"quantile": true, "limitk": true, "limit_ratio": true}
)

// selectors lists the vector selectors of a PromQL expression. It is a small
// scanner, not a parser (promtool and a real Prometheus check the syntax):
// it skips strings, comments, range and subquery brackets, grouping label
// lists, keywords, function names (an identifier followed by '(') and
// Grafana variables, and reports every other identifier as a metric name
// with the matchers that follow it.
func selectors(expr string) ([]selector, error) {
	s := expr
	var out []selector
	i := 0
	skipSpace := func(j int) int {
		for j < len(s) && strings.ContainsRune(" \t\r\n", rune(s[j])) {
			j++
		}
		return j
	}
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			_, j, err := readString(s, i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unclosed '[' at %d in %q", i, expr)
			}
			i += j + 1
		case c == '$':
			i++
			if i < len(s) && s[i] == '{' {
				j := strings.IndexByte(s[i:], '}')
				if j < 0 {
					return nil, fmt.Errorf("unclosed '${' in %q", expr)
				}
				i += j + 1
			}
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			// A number or a duration: 0.8, 1e-3, 0x1F, 5m, 1h30m.
			j := i + 1
			for j < len(s) && (isIdentChar(s[j]) || s[j] == '.' ||
				(s[j] == '+' || s[j] == '-') && (s[j-1] == 'e' || s[j-1] == 'E') && !strings.HasPrefix(s[i:], "0x")) {
				j++
			}
			i = j
		case c == '{':
			// A selector without a name before it: {__name__="x", ...}.
			ms, j, err := readMatchers(s, i)
			if err != nil {
				return nil, err
			}
			i = j
			sel := selector{Matchers: ms}
			for _, m := range ms {
				if m.Label == "__name__" && m.Op == "=" {
					sel.Name = m.Value
				}
			}
			if sel.Name == "" {
				return nil, fmt.Errorf("selector without a metric name in %q", expr)
			}
			out = append(out, sel)
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			word := s[i:j]
			lower := strings.ToLower(word)
			k := skipSpace(j)
			switch {
			case promqlGrouping[lower]:
				i = j
				if k < len(s) && s[k] == '(' {
					end := strings.IndexByte(s[k:], ')')
					if end < 0 {
						return nil, fmt.Errorf("unclosed %s( in %q", word, expr)
					}
					i = k + end + 1
				}
			case promqlKeywords[lower]:
				i = j
			case k < len(s) && s[k] == '(':
				i = j // a function call
			default:
				sel := selector{Name: word}
				i = j
				if k < len(s) && s[k] == '{' {
					ms, end, err := readMatchers(s, k)
					if err != nil {
						return nil, err
					}
					sel.Matchers, i = ms, end
				}
				out = append(out, sel)
			}
		default:
			i++
		}
	}
	return out, nil
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// readString reads the string literal at s[i] and returns its value and the
// index after it.
func readString(s string, i int) (string, int, error) {
	q := s[i]
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == q:
			return b.String(), j + 1, nil
		case s[j] == '\\' && q != '`' && j+1 < len(s):
			j++
			switch s[j] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(s[j])
			}
		default:
			b.WriteByte(s[j])
		}
	}
	return "", 0, fmt.Errorf("unclosed string at %d in %q", i, s)
}

// readMatchers reads {label op "value", ...} at s[i] == '{'.
func readMatchers(s string, i int) ([]matcher, int, error) {
	var ms []matcher
	j := i + 1
	for {
		for j < len(s) && strings.ContainsRune(" \t\r\n,", rune(s[j])) {
			j++
		}
		if j >= len(s) {
			return nil, 0, fmt.Errorf("unclosed '{' in %q", s)
		}
		if s[j] == '}' {
			return ms, j + 1, nil
		}
		start := j
		for j < len(s) && isIdentChar(s[j]) {
			j++
		}
		label := s[start:j]
		for j < len(s) && s[j] == ' ' {
			j++
		}
		var op string
		for _, o := range []string{"=~", "!~", "!=", "="} {
			if strings.HasPrefix(s[j:], o) {
				op = o
				break
			}
		}
		if label == "" || op == "" {
			return nil, 0, fmt.Errorf("bad label matcher at %d in %q", start, s)
		}
		j += len(op)
		for j < len(s) && s[j] == ' ' {
			j++
		}
		if j >= len(s) || !strings.ContainsRune("\"'`", rune(s[j])) {
			return nil, 0, fmt.Errorf("label matcher %s%s without a quoted value in %q", label, op, s)
		}
		val, end, err := readString(s, j)
		if err != nil {
			return nil, 0, err
		}
		ms = append(ms, matcher{Label: label, Op: op, Value: val})
		j = end
	}
}

func TestSelectors(t *testing.T) {
	cases := []struct {
		expr string
		want []string
	}{
		{`max by (period) (spendgate_budget_utilization_ratio) >= 0.8 < 0.9`, []string{"spendgate_budget_utilization_ratio"}},
		{`histogram_quantile(0.99, sum by (le) (rate(spendgate_ingest_delay_seconds_bucket[$__rate_interval])))`,
			[]string{"spendgate_ingest_delay_seconds_bucket"}},
		{`absent(up{job="spendgate-ingest"} == 1)`, []string{`up{job="spendgate-ingest"}`}},
		{`max(a) > 0
		  and on () (time() - max(b)) > 300
		  AND ON() sum(rate(c{result=~"ins.*", x!="}{"}[5m:1m])) == 0 # a comment with d`,
			[]string{"a", "b", `c{result=~"ins.*",x!="}{"}`}},
		{`sum(rate(x[5m])) by (le) / ignoring(le) group_left(z) y offset 1h`, []string{"x", "y"}},
		{`{__name__="n", a='b'} * 1e-3 + .5 - 0x1F + Inf`, []string{`n{__name__="n",a="b"}`}},
		{`topk(3, sum without (instance) (m{period="${period}"}))`, []string{`m{period="${period}"}`}},
	}
	for _, c := range cases {
		sels, err := selectors(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		got := make([]string, len(sels))
		for i, s := range sels {
			got[i] = s.String()
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("selectors(%q)\n got %q\nwant %q", c.expr, got, c.want)
		}
	}
	for _, bad := range []string{`x{a="b"`, `rate(x[5m)`, `x{a b}`, `{a="b"}`} {
		if _, err := selectors(bad); err == nil {
			t.Errorf("selectors(%q): no error", bad)
		}
	}
}
