// Package cli holds what spendgate's commands share: exit codes, usage
// errors, signal handling and the logger.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spendgate/spendgate/internal/config"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes of every spendgate command.
const (
	ExitOK      = 0
	ExitFailed  = 1 // the operation failed
	ExitUsage   = 2 // bad flags or arguments
	ExitBlocked = 3 // audit gate check: the operation is blocked
)

// UsageError is bad input on the command line: exit 2, with usage.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef makes a UsageError.
func Usagef(format string, a ...any) error { return &UsageError{Err: fmt.Errorf(format, a...)} }

// ExitError carries an exit code with no message of its own (e.g. check's 3).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit %d", e.Code) }

// Execute runs root with the process's arguments, stopping on SIGINT or
// SIGTERM, and returns the exit code: usage errors print the usage and give
// 2, other errors one line on stderr and 1.
func Execute(root *cobra.Command, args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return ExecuteContext(ctx, root, args, stderr)
}

// ExecuteContext is Execute with the caller's context (tests cancel it).
func ExecuteContext(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(args)
	root.SetErr(stderr)
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &UsageError{Err: err} })
	for _, c := range root.Commands() {
		setArgsUsage(c)
	}
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var ue *UsageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		if cmd != nil {
			fmt.Fprint(stderr, cmd.UsageString())
		}
		return ExitUsage
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	return ExitFailed
}

// setArgsUsage makes positional-argument errors usage errors too.
func setArgsUsage(c *cobra.Command) {
	if c.Args != nil {
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return &UsageError{Err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		setArgsUsage(sub)
	}
}

// cobra reports an unknown command as a plain error.
func isCobraUsage(err error) bool {
	s := err.Error()
	return len(s) > 16 && s[:16] == "unknown command "
}

// NewLogger builds the slog logger the configuration asks for.
func NewLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// LoadConfig loads the configuration for a command: --config, environment
// and the command's flags bound to their keys.
func LoadConfig(cmd *cobra.Command) (config.Config, error) {
	v := config.New()
	if err := config.BindFlags(v, cmd.Flags()); err != nil {
		return config.Config{}, err
	}
	file, _ := cmd.Flags().GetString("config")
	return config.Load(v, file)
}

// AddConnectionFlags adds the flags every command shares: --config and the
// servers' addresses, each bound to its configuration key by LoadConfig.
// natsURL describes what an empty --nats-url means for this command.
func AddConnectionFlags(fs *pflag.FlagSet, natsURL string) {
	fs.String("config", "", "configuration file (default ./spendgate.yaml if present)")
	fs.String("nats-url", "", "NATS server URL (nats.url); empty: "+natsURL)
	fs.String("clickhouse-addr", "", "ClickHouse native address (clickhouse.addr, default 127.0.0.1:9000)")
	fs.String("clickhouse-database", "", "ClickHouse database (clickhouse.database, default spendgate)")
}
