package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spendgate/spendgate/internal/audit"
	"github.com/spendgate/spendgate/internal/cli"
	"github.com/spendgate/spendgate/internal/gate"
	"github.com/spendgate/spendgate/internal/olap"
	"github.com/spf13/cobra"
)

func rootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "audit",
		Short: "Budget summary, cost breakdowns, scaling gate control and exports for spendgate",
		Long: `audit answers operators from spendgate's ClickHouse rollups and its NATS gate:
budget summary, cost breakdowns, gate status/enable/disable/auto/history/watch/check,
JSON and CSV exports, and a Prometheus text export.

Exit codes: 0 success, 1 a failed operation, 2 bad usage, 3 gate check: blocked.`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return a.load(cmd) },
		Args:              cobra.NoArgs,
	}
	pf := root.PersistentFlags()
	cli.AddConnectionFlags(pf, "the embedded server of a running ingest on nats.listen")
	pf.String("budgets-timezone", "", "time zone of days, weeks and months (budgets.timezone, default UTC)")
	root.AddCommand(summaryCmd(a), costsCmd(a), gateCmd(a), exportCmd(a), exportPrometheusCmd(a))
	return root
}

func addFormat(c *cobra.Command, def string, allowed ...string) {
	c.Flags().String("format", def, "output format: "+strings.Join(allowed, ", "))
}

// addPeriod adds --period, --from and --to.
func addPeriod(c *cobra.Command) {
	c.Flags().String("period", "day", "day, week (ISO, Monday first) or month, in budgets.timezone")
	c.Flags().String("from", "", "first date, YYYY-MM-DD (with --to; overrides --period)")
	c.Flags().String("to", "", "last date, YYYY-MM-DD, inclusive (default today)")
}

func selection(cmd *cobra.Command, a *app) (audit.Selection, error) {
	p, _ := cmd.Flags().GetString("period")
	from, _ := cmd.Flags().GetString("from")
	to, _ := cmd.Flags().GetString("to")
	sel, err := audit.Select(p, from, to, now(), a.policy.Location)
	if err != nil {
		return sel, &cli.UsageError{Err: err}
	}
	return sel, nil
}

func summaryCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "summary",
		Short: "Daily and monthly budget, spend, % of budget, alerts and the scaling gate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := format(cmd, "text", "json")
			if err != nil {
				return err
			}
			defer a.close()
			ch, err := a.clickhouse(cmd.Context())
			if err != nil {
				return err
			}
			st, err := a.loadGate(cmd.Context())
			if err != nil {
				return err
			}
			s, err := audit.BuildSummary(cmd.Context(), ch, a.policy, st, now())
			if err != nil {
				return err
			}
			return render(cmd, f, s)
		},
	}
	addFormat(c, "text", "text", "json")
	return c
}

func costsCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "costs",
		Short: "Costs by service, then the top operations of each service",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := format(cmd, "text", "json", "csv")
			if err != nil {
				return err
			}
			sel, err := selection(cmd, a)
			if err != nil {
				return err
			}
			service, _ := cmd.Flags().GetString("service")
			top, _ := cmd.Flags().GetInt("top")
			if top < 0 {
				return cli.Usagef("--top must be >= 0")
			}
			defer a.close()
			ch, err := a.clickhouse(cmd.Context())
			if err != nil {
				return err
			}
			costs, err := audit.BuildCosts(cmd.Context(), ch, sel, service, top)
			if err != nil {
				return err
			}
			if f == "csv" {
				return costs.CSV(cmd.OutOrStdout())
			}
			return render(cmd, f, costs)
		},
	}
	addFormat(c, "text", "text", "json", "csv")
	addPeriod(c)
	c.Flags().String("service", "", "only this service")
	c.Flags().Int("top", 5, "operations shown per service in text (0: all)")
	return c
}

func exportCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "export",
		Short: "Write a cost report (period, total, by service, by operation) as JSON or CSV",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := format(cmd, "json", "csv")
			if err != nil {
				return err
			}
			out := output(cmd)
			if out == "" {
				return &cli.UsageError{Err: audit.ErrNoOutput}
			}
			sel, err := selection(cmd, a)
			if err != nil {
				return err
			}
			prog := newProgress(cmd.ErrOrStderr(), 3)
			defer prog.done()
			defer a.close()
			prog.step("connecting to ClickHouse")
			ch, err := a.clickhouse(cmd.Context())
			if err != nil {
				return err
			}
			prog.step("reading the rollups " + sel.Range.StartDate() + " to " + sel.Range.EndDate())
			costs, err := audit.BuildCosts(cmd.Context(), ch, sel, "", 0)
			if err != nil {
				return err
			}
			prog.step("writing " + out)
			write := func(w io.Writer) error {
				if f == "csv" {
					return costs.CSV(w)
				}
				return audit.JSON(w, costs.Export(now()))
			}
			if out == "-" {
				return write(cmd.OutOrStdout())
			}
			if err := audit.WriteFileAtomic(out, write); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%s to %s, total %s)\n", out, costs.StartDate, costs.EndDate, costs.TotalText())
			return nil
		},
	}
	addFormat(c, "json", "json", "csv")
	addPeriod(c)
	c.Flags().String("output", "-", "file to write atomically, or - for standard output")
	return c
}

func exportPrometheusCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "export-prometheus",
		Short: "Write budget, spend and gate metrics in Prometheus text format (for node_exporter's textfile collector)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := format(cmd, "text"); err != nil {
				return err
			}
			out := output(cmd)
			if out == "" {
				return &cli.UsageError{Err: audit.ErrNoOutput}
			}
			defer a.close()
			ctx := cmd.Context()
			ch, err := a.clickhouse(ctx)
			if err != nil {
				return err
			}
			st, err := a.loadGate(ctx)
			if err != nil {
				return err
			}
			t := now()
			s, err := audit.BuildSummary(ctx, ch, a.policy, st, t)
			if err != nil {
				return err
			}
			var daily, monthly audit.Selection
			if daily, err = audit.Select("day", "", "", t, a.policy.Location); err != nil {
				return err
			}
			if monthly, err = audit.Select("month", "", "", t, a.policy.Location); err != nil {
				return err
			}
			dsvc, err := ch.ByService(ctx, daily.Range, olap.Filter{})
			if err != nil {
				return err
			}
			msvc, err := ch.ByService(ctx, monthly.Range, olap.Filter{})
			if err != nil {
				return err
			}
			write := func(w io.Writer) error { return audit.Prometheus(w, s, st, dsvc, msvc) }
			if out == "-" {
				return write(cmd.OutOrStdout())
			}
			return audit.WriteFileAtomic(out, write)
		},
	}
	c.Flags().String("output", "-", "file to write atomically (e.g. /var/lib/node_exporter/textfile/spendgate.prom), or -")
	addFormat(c, "text", "text (the Prometheus text exposition format)")
	return c
}

func gateCmd(a *app) *cobra.Command {
	g := &cobra.Command{
		Use:   "gate",
		Short: "Scaling gate: status, enable, disable, auto, history, watch, check",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cli.Usagef("unknown gate command %q", args[0])
			}
			return cli.Usagef("gate needs a command")
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "The gate's state, reason, mode and recent history",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := format(cmd, "text", "json")
			if err != nil {
				return err
			}
			limit, _ := cmd.Flags().GetInt("limit")
			defer a.close()
			ctx := cmd.Context()
			st, err := a.loadGate(ctx)
			if err != nil {
				return err
			}
			hist, err := history(ctx, a, limit)
			if err != nil {
				return err
			}
			verdict := gate.Verdict{State: st.AutoState, Reason: "not evaluated: ClickHouse unreachable"}
			if ch, err := a.clickhouse(ctx); err == nil {
				if statuses, err := a.policy.Statuses(ctx, ch, now()); err == nil {
					verdict = a.policy.Decide(st.AutoState, statuses)
				}
			}
			gs := audit.BuildGateStatus(st, verdict, hist, a.policy.Location)
			return render(cmd, f, gs)
		},
	}
	addFormat(status, "text", "text", "json")
	status.Flags().Int("limit", 5, "history entries to show")

	hist := &cobra.Command{
		Use:   "history",
		Short: "Every gate change and override, newest first: when, who, why, spends",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := format(cmd, "text", "json")
			if err != nil {
				return err
			}
			limit, _ := cmd.Flags().GetInt("limit")
			if limit <= 0 {
				return cli.Usagef("--limit must be > 0")
			}
			defer a.close()
			h, err := history(cmd.Context(), a, limit)
			if err != nil {
				return err
			}
			return render(cmd, f, audit.NewHistory(h, a.policy.Location))
		},
	}
	addFormat(hist, "text", "text", "json")
	hist.Flags().Int("limit", 20, "entries to show")

	watch := &cobra.Command{
		Use:   "watch",
		Short: "Print the current gate state, then each gate-state event, as one JSON line each, until interrupted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := format(cmd, "json", "text")
			if err != nil {
				return err
			}
			defer a.close()
			ctx := cmd.Context()
			s, err := a.gateStore(ctx, true)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			st, _, err := s.Load(ctx)
			if err != nil {
				return err
			}
			emit := func(e gate.State, raw []byte) {
				if f == "text" {
					_ = audit.HistoryLine(out, e, a.policy.Location)
					return
				}
				fmt.Fprintf(out, "%s\n", raw)
			}
			if st.Seq > 0 {
				line, _ := json.Marshal(st)
				emit(st, line)
			}
			return s.Watch(ctx, func(e gate.State, raw []byte) {
				if e.Seq > st.Seq {
					emit(e, raw)
				}
			})
		},
	}
	addFormat(watch, "json", "json", "text")

	check := &cobra.Command{
		Use:   "check",
		Short: "Exit 0 if --service/--operation may scale now, 3 if the gate blocks it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			service, _ := cmd.Flags().GetString("service")
			op, _ := cmd.Flags().GetString("operation")
			if service == "" || op == "" {
				return cli.Usagef("gate check needs --service and --operation")
			}
			f, err := format(cmd, "text", "json")
			if err != nil {
				return err
			}
			defer a.close()
			st, err := a.loadGate(cmd.Context())
			if err != nil {
				return err
			}
			ok, why := gate.Allowed(st, a.policy.Critical, service, op)
			verdict := "allowed"
			if !ok {
				verdict = "blocked"
			}
			if f == "json" {
				_ = audit.JSON(cmd.OutOrStdout(), map[string]any{"service": service, "operation": op,
					"allowed": ok, "reason": why, "gate_state": st.State})
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s/%s: %s\n", verdict, service, op, why)
			}
			if !ok {
				return &cli.ExitError{Code: cli.ExitBlocked}
			}
			return nil
		},
	}
	check.Flags().String("service", "", "the service that wants to scale")
	check.Flags().String("operation", "", "its operation")
	addFormat(check, "text", "text", "json")

	g.AddCommand(status, hist, watch, check,
		overrideCmd(a, "enable", gate.ModeEnabled, "Force the gate active until disable or auto"),
		overrideCmd(a, "disable", gate.ModeDisabled, "Force the gate inactive until auto or the end of today (budgets.timezone)"),
		overrideCmd(a, "auto", gate.ModeAuto, "Hand the gate back to the automatic evaluation"))
	return g
}

func overrideCmd(a *app, name, mode, short string) *cobra.Command {
	c := &cobra.Command{
		Use:     name + " --reason R",
		Example: "  audit gate " + name + " --reason \"Monthly budget threshold reached\"",
		Short:   short,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reason, _ := cmd.Flags().GetString("reason")
			if strings.TrimSpace(reason) == "" {
				if mode != gate.ModeAuto {
					return cli.Usagef("gate %s needs --reason: every gate change is kept in history with its reason", name)
				}
				reason = "handed back to the automatic evaluation"
			}
			f, err := format(cmd, "text", "json")
			if err != nil {
				return err
			}
			defer a.close()
			ctx := cmd.Context()
			s, err := a.gateStore(ctx, true)
			if err != nil {
				return err
			}
			// The spends at this moment go into history; if ClickHouse is
			// down the change still goes through (it may be urgent), without them.
			var statuses []gate.BudgetStatus
			if ch, err := a.clickhouse(ctx); err == nil {
				statuses, err = a.policy.Statuses(ctx, ch, now())
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: spends not recorded: %v\n", err)
				}
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: spends not recorded: %v\n", err)
			}
			if statuses == nil {
				statuses = []gate.BudgetStatus{}
			}
			st, err := gate.Override(ctx, s, a.policy, mode, reason, whoami(), statuses, now())
			if err != nil {
				return err
			}
			if f == "json" {
				return audit.JSON(cmd.OutOrStdout(), st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Scaling gate %s (mode %s) by %s: %s\n", strings.ToUpper(st.State), st.Mode, st.By, st.Reason)
			return nil
		},
	}
	c.Flags().String("reason", "", "why, kept in history (required for enable and disable)")
	addFormat(c, "text", "text", "json")
	return c
}

// texter is a report with a text layout; as JSON it is itself.
type texter interface{ Text(io.Writer) error }

// render writes v as --format asks: json, or its text layout.
func render(cmd *cobra.Command, f string, v texter) error {
	if f == "json" {
		return audit.JSON(cmd.OutOrStdout(), v)
	}
	return v.Text(cmd.OutOrStdout())
}

// history reads the gate's history; none yet when ingest never ran.
func history(ctx context.Context, a *app, limit int) ([]gate.State, error) {
	s, err := a.gateStore(ctx, false)
	if err != nil {
		return nil, err
	}
	h, err := s.History(ctx, limit)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return []gate.State{}, nil
	}
	return h, err
}

// progress is a one-line progress indicator on a terminal's stderr.
type progress struct {
	w     io.Writer
	on    bool
	n, of int
	start time.Time
}

func newProgress(w io.Writer, of int) *progress {
	return &progress{w: w, on: isTerminal(w) && os.Getenv("TERM") != "dumb", of: of, start: time.Now()}
}

func (p *progress) step(what string) {
	p.n++
	if p.on {
		bar := strings.Repeat("#", p.n*20/p.of) + strings.Repeat(".", 20-p.n*20/p.of)
		fmt.Fprintf(p.w, "\r\033[K[%s] %d/%d %s", bar, p.n, p.of, what)
	}
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintf(p.w, "\r\033[K")
	}
}
