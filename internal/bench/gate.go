package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/events"
	"github.com/spendgate/spendgate/internal/gate"
	"github.com/spendgate/spendgate/internal/loadgen"
)

// GateReport is the gate's reaction time: from publishing the event that
// crosses a threshold to a subscriber receiving the transition.
type GateReport struct {
	Crossings int
	P50, P99  time.Duration
	Max       time.Duration
}

// The crossing events are dated 24h minus crossingLife ago, so in a sliding
// 24-hour window they count for crossingLife and then leave it, and the gate
// releases by itself before the next crossing.
const crossingLife = 2 * time.Second

// runGate measures the reaction time over o.GateCrossings crossings with a
// background load of o.GateLoad events/s, against a real ingest process with
// the default flush interval.
func runGate(ctx context.Context, o Options, b *events.Broker, dir string) (GateReport, error) {
	rep := GateReport{Crossings: o.GateCrossings}
	// A $1 scoped budget for the crossing service, sliding 24h windows, and
	// daily and monthly budgets far above what the background load spends.
	cfgFile := filepath.Join(dir, "gate-bench.yaml")
	yaml := `budgets:
  window: sliding
  daily_usd: 100000000
  monthly_usd: 100000000
  scoped:
    - {name: gatebench, service: gatebench, period: 24h, limit_usd: 1}
`
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		return rep, err
	}
	ch, drop, err := scratchDB(ctx, o, "gatebench")
	if err != nil {
		return rep, err
	}
	defer drop()
	c, err := startIngest(ctx, o, b.URL(), ch.Database(), dir, "--config", cfgFile)
	if err != nil {
		return rep, err
	}
	defer c.stop()

	states := make(chan gate.State, 64)
	sub, err := b.NC.Subscribe(gate.SubjectState, func(m *nats.Msg) {
		var st gate.State
		if json.Unmarshal(m.Data, &st) == nil {
			states <- st
		}
	})
	if err != nil {
		return rep, err
	}
	defer sub.Unsubscribe()

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	go func() {
		g := loadgen.NewGenerator(7, "gateload-")
		_, _ = loadgen.Publish(loadCtx, b.JS, g, loadgen.Options{Count: 1 << 30, Rate: float64(o.GateLoad)})
	}()

	wait := func(state string, timeout time.Duration) (time.Time, error) {
		deadline := time.After(timeout)
		for {
			select {
			case st := <-states:
				if st.State == state {
					return time.Now(), nil
				}
			case <-deadline:
				return time.Time{}, fmt.Errorf("no %s gate event within %s", state, timeout)
			}
		}
	}
	var times []time.Duration
	for i := 0; i < o.GateCrossings; i++ {
		now := time.Now()
		ev := events.Event{
			EventID: "gatebench-" + strconv.FormatInt(now.UnixNano(), 10), TS: now.Add(-24*time.Hour + crossingLife),
			Service: "gatebench", Operation: "crossing", CostUSD: decimal.NewFromInt(1),
		}
		m, err := loadgen.Msg(ev)
		if err != nil {
			return rep, err
		}
		start := time.Now()
		if _, err := b.JS.PublishMsg(ctx, m); err != nil {
			return rep, err
		}
		got, err := wait(gate.StateActive, 10*time.Second)
		if err != nil {
			return rep, fmt.Errorf("crossing %d: %w", i+1, err)
		}
		times = append(times, got.Sub(start))
		if _, err := wait(gate.StateInactive, 10*time.Second); err != nil {
			return rep, fmt.Errorf("release after crossing %d: %w", i+1, err)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	rep.P50 = times[len(times)/2]
	rep.P99 = times[(len(times)*99+99)/100-1]
	rep.Max = times[len(times)-1]
	return rep, nil
}
