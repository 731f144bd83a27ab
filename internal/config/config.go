// Package config loads spendgate's configuration with viper: defaults, then
// the file (spendgate.yaml or --config), then SPENDGATE_<SECTION>_<KEY>
// environment variables, then command-line flags bound to the same keys.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/shopspring/decimal"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid configuration")

// Config is the whole configuration; see Defaults for every key's default.
type Config struct {
	DataDir    string     `mapstructure:"data_dir"`
	NATS       NATS       `mapstructure:"nats"`
	ClickHouse ClickHouse `mapstructure:"clickhouse"`
	Ingest     Ingest     `mapstructure:"ingest"`
	Metrics    Metrics    `mapstructure:"metrics"`
	Log        Log        `mapstructure:"log"`
	Budgets    Budgets    `mapstructure:"budgets"`
	Gate       Gate       `mapstructure:"gate"`
}

// Budgets are the limits the scaling gate enforces. Money and ratios are
// exact decimals: a YAML number is read from its shortest decimal form.
type Budgets struct {
	Timezone         string          `mapstructure:"timezone"`
	DailyUSD         decimal.Decimal `mapstructure:"daily_usd"`
	MonthlyUSD       decimal.Decimal `mapstructure:"monthly_usd"`
	AlertThreshold   decimal.Decimal `mapstructure:"alert_threshold"`   // warn at this fraction of a budget
	GateThreshold    decimal.Decimal `mapstructure:"gate_threshold"`    // activate the gate at this fraction
	ReleaseThreshold decimal.Decimal `mapstructure:"release_threshold"` // deactivate only below this fraction
	// Window is "calendar" (today and this month in Timezone) or "sliding"
	// (the last 24 hours and the last 30 days).
	Window string         `mapstructure:"window"`
	Scoped []ScopedBudget `mapstructure:"scoped"`
}

// ScopedBudget is a budget for one service and/or operation.
type ScopedBudget struct {
	Name      string          `mapstructure:"name"`
	Service   string          `mapstructure:"service"`   // empty: any
	Operation string          `mapstructure:"operation"` // empty: any
	Period    string          `mapstructure:"period"`    // day | week | month | 24h | 30d
	LimitUSD  decimal.Decimal `mapstructure:"limit_usd"`
}

// Gate tunes the scaling gate.
type Gate struct {
	// CriticalOperations are allowed while the gate is active: service →
	// operations, "*" for all of a service's operations.
	CriticalOperations map[string][]string `mapstructure:"critical_operations"`
	// EvalInterval is how often the gate is evaluated besides after each flush.
	EvalInterval time.Duration `mapstructure:"eval_interval"`
}

// Location loads Timezone.
func (b Budgets) Location() (*time.Location, error) {
	loc, err := time.LoadLocation(b.Timezone)
	if err != nil {
		return nil, fmt.Errorf("%w: budgets.timezone %q: %w", ErrInvalid, b.Timezone, err)
	}
	return loc, nil
}

// TLS is client TLS material; all empty means no TLS.
type TLS struct {
	Enabled            bool   `mapstructure:"enabled"`
	CA                 string `mapstructure:"ca"`
	Cert               string `mapstructure:"cert"`
	Key                string `mapstructure:"key"`
	ServerName         string `mapstructure:"server_name"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

// NATS says which JetStream to use and how the streams are set up.
type NATS struct {
	URL             string        `mapstructure:"url"`    // empty: embedded server
	Listen          string        `mapstructure:"listen"` // embedded server's client address
	Creds           string        `mapstructure:"creds"`
	User            string        `mapstructure:"user"`
	Password        string        `mapstructure:"password"`
	Token           string        `mapstructure:"token"`
	TLS             TLS           `mapstructure:"tls"`
	DuplicateWindow time.Duration `mapstructure:"duplicate_window"` // publisher-retry window
	MaxAge          time.Duration `mapstructure:"max_age"`          // how long streams keep events; 0 forever
	Replicas        int           `mapstructure:"replicas"`
}

// ClickHouse says where events are stored.
type ClickHouse struct {
	Addr     string `mapstructure:"addr"`
	Database string `mapstructure:"database"`
	User     string `mapstructure:"user"`
	Password string `mapstructure:"password"`
	TLS      TLS    `mapstructure:"tls"`
}

// Ingest tunes the worker.
type Ingest struct {
	BatchSize     int           `mapstructure:"batch_size"`
	Inserters     int           `mapstructure:"inserters"` // batches inserted at once
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	Consumer      string        `mapstructure:"consumer"` // durable name shared by all workers
	AckWait       time.Duration `mapstructure:"ack_wait"`
	MaxAckPending int           `mapstructure:"max_ack_pending"`
	RetryMin      time.Duration `mapstructure:"retry_min"` // first back-off after a ClickHouse error
	RetryMax      time.Duration `mapstructure:"retry_max"`
	ShutdownGrace time.Duration `mapstructure:"shutdown_grace"`
}

// Metrics is the HTTP listener for /metrics, /healthz and /readyz.
type Metrics struct {
	Listen string `mapstructure:"listen"`
}

// Log sets slog's level (debug|info|warn|error) and format (text|json).
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Defaults is every key with its default value.
var Defaults = map[string]any{
	"data_dir":                            ".data/ingest",
	"nats.url":                            "",
	"nats.listen":                         "127.0.0.1:4222",
	"nats.creds":                          "",
	"nats.user":                           "",
	"nats.password":                       "",
	"nats.token":                          "",
	"nats.tls.enabled":                    false,
	"nats.tls.ca":                         "",
	"nats.tls.cert":                       "",
	"nats.tls.key":                        "",
	"nats.tls.server_name":                "",
	"nats.tls.insecure_skip_verify":       false,
	"nats.duplicate_window":               "10m",
	"nats.max_age":                        "720h",
	"nats.replicas":                       1,
	"clickhouse.addr":                     "127.0.0.1:9000",
	"clickhouse.database":                 "spendgate",
	"clickhouse.user":                     "",
	"clickhouse.password":                 "",
	"clickhouse.tls.enabled":              false,
	"clickhouse.tls.ca":                   "",
	"clickhouse.tls.cert":                 "",
	"clickhouse.tls.key":                  "",
	"clickhouse.tls.server_name":          "",
	"clickhouse.tls.insecure_skip_verify": false,
	"ingest.batch_size":                   5000,
	"ingest.inserters":                    2,
	"ingest.flush_interval":               "200ms",
	"ingest.consumer":                     "spendgate-ingest",
	"ingest.ack_wait":                     "30s",
	"ingest.max_ack_pending":              20000,
	"ingest.retry_min":                    "200ms",
	"ingest.retry_max":                    "10s",
	"ingest.shutdown_grace":               "10s",
	"metrics.listen":                      "127.0.0.1:9464",
	"log.level":                           "info",
	"log.format":                          "text",
	"budgets.timezone":                    "UTC",
	"budgets.daily_usd":                   "50",
	"budgets.monthly_usd":                 "1000",
	"budgets.alert_threshold":             "0.8",
	"budgets.gate_threshold":              "0.9",
	"budgets.release_threshold":           "0.85",
	"budgets.window":                      "calendar",
	"budgets.scoped":                      []any{},
	"gate.critical_operations":            map[string]any{},
	"gate.eval_interval":                  "1s",
}

// New returns a viper instance with defaults and environment variables set up.
func New() *viper.Viper {
	v := viper.New()
	for k, val := range Defaults {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix("SPENDGATE")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	return v
}

// Load reads file (if not empty; else ./spendgate.yaml if present) into v and
// decodes and validates the result. Unknown keys in the file are an error, so
// a misspelt key is never silently ignored.
func Load(v *viper.Viper, file string) (Config, error) {
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", file, err)
		}
	} else if _, err := os.Stat("spendgate.yaml"); err == nil {
		v.SetConfigFile("spendgate.yaml")
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("config file spendgate.yaml: %w", err)
		}
	}
	var c Config
	hook := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(), mapstructure.StringToSliceHookFunc(","), decimalHook))
	if err := v.UnmarshalExact(&c, hook); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return c, c.Validate()
}

// BindFlags binds flags named like keys with '-' for '.' and '_'
// (e.g. --clickhouse-addr) to their keys.
func BindFlags(v *viper.Viper, fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		for k := range Defaults {
			if strings.NewReplacer(".", "-", "_", "-").Replace(k) == f.Name {
				if e := v.BindPFlag(k, f); e != nil && err == nil {
					err = e
				}
			}
		}
	})
	return err
}

// Validate checks values a typo could make nonsensical.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(c.Ingest.BatchSize > 0, "ingest.batch_size must be > 0, is %d", c.Ingest.BatchSize)
	check(c.Ingest.Inserters >= 1 && c.Ingest.Inserters <= 16, "ingest.inserters must be 1 to 16, is %d", c.Ingest.Inserters)
	check(c.Ingest.FlushInterval > 0, "ingest.flush_interval must be > 0, is %s", c.Ingest.FlushInterval)
	check(c.Ingest.AckWait >= time.Second, "ingest.ack_wait must be >= 1s, is %s", c.Ingest.AckWait)
	check(c.Ingest.MaxAckPending >= c.Ingest.BatchSize, "ingest.max_ack_pending (%d) must be >= ingest.batch_size (%d)", c.Ingest.MaxAckPending, c.Ingest.BatchSize)
	check(c.Ingest.Consumer != "" && !strings.ContainsAny(c.Ingest.Consumer, ". *>"), "ingest.consumer %q must be a non-empty name without '.', '*', '>' or spaces", c.Ingest.Consumer)
	check(c.Ingest.RetryMin > 0 && c.Ingest.RetryMax >= c.Ingest.RetryMin, "ingest.retry_min and retry_max must be > 0 and ordered")
	check(c.NATS.DuplicateWindow > 0, "nats.duplicate_window must be > 0")
	check(c.NATS.Replicas >= 1 && c.NATS.Replicas <= 5, "nats.replicas must be 1 to 5")
	check(c.NATS.URL != "" || c.NATS.Listen != "", "nats.listen is needed when nats.url is empty")
	one := decimal.NewFromInt(1)
	b := c.Budgets
	if _, err := b.Location(); err != nil {
		errs = append(errs, err)
	}
	check(b.DailyUSD.IsPositive() && b.MonthlyUSD.IsPositive(), "budgets.daily_usd and monthly_usd must be > 0")
	check(b.AlertThreshold.IsPositive() && b.AlertThreshold.LessThanOrEqual(one), "budgets.alert_threshold must be in (0, 1], is %s", b.AlertThreshold)
	check(b.GateThreshold.IsPositive(), "budgets.gate_threshold must be > 0, is %s", b.GateThreshold)
	check(b.ReleaseThreshold.IsPositive() && b.ReleaseThreshold.LessThan(b.GateThreshold),
		"budgets.release_threshold (%s) must be > 0 and below gate_threshold (%s)", b.ReleaseThreshold, b.GateThreshold)
	check(b.Window == "calendar" || b.Window == "sliding", "budgets.window %q must be calendar or sliding", b.Window)
	names := map[string]bool{"daily": true, "monthly": true}
	for i, sb := range b.Scoped {
		check(sb.Name != "" && !names[sb.Name], "budgets.scoped[%d]: name %q must be set and unique (daily and monthly are taken)", i, sb.Name)
		names[sb.Name] = true
		check(sb.Service != "" || sb.Operation != "", "budgets.scoped[%d] %q: set service and/or operation", i, sb.Name)
		switch sb.Period {
		case "day", "week", "month", "24h", "30d":
		default:
			check(false, "budgets.scoped[%d] %q: period %q must be day, week, month, 24h or 30d", i, sb.Name, sb.Period)
		}
		check(sb.LimitUSD.IsPositive(), "budgets.scoped[%d] %q: limit_usd must be > 0", i, sb.Name)
	}
	check(c.Gate.EvalInterval >= 50*time.Millisecond, "gate.eval_interval must be >= 50ms, is %s", c.Gate.EvalInterval)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		check(false, "log.level %q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		check(false, "log.format %q must be text or json", c.Log.Format)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// Config builds a *tls.Config, or nil when TLS is off.
func (t TLS) Config() (*tls.Config, error) {
	if !t.Enabled && t.CA == "" && t.Cert == "" {
		return nil, nil
	}
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca %s: no certificates found", t.CA)
		}
		c.RootCAs = pool
	}
	if t.Cert != "" || t.Key != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("tls cert/key: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

var decimalType = reflect.TypeOf(decimal.Decimal{})

// decimalHook reads money and ratios exactly: strings as written, YAML
// numbers from their shortest decimal form (0.1 is 0.1, not 0.1000000000000000055…).
func decimalHook(from, to reflect.Type, data any) (any, error) {
	if to != decimalType {
		return data, nil
	}
	switch v := data.(type) {
	case string:
		d, err := decimal.NewFromString(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%q is not a decimal number", v)
		}
		return d, nil
	case float64:
		return decimal.RequireFromString(strconv.FormatFloat(v, 'f', -1, 64)), nil
	case float32:
		return decimal.RequireFromString(strconv.FormatFloat(float64(v), 'f', -1, 32)), nil
	case int:
		return decimal.NewFromInt(int64(v)), nil
	case int64:
		return decimal.NewFromInt(v), nil
	case uint64:
		return decimal.RequireFromString(strconv.FormatUint(v, 10)), nil
	case decimal.Decimal:
		return v, nil
	}
	return nil, fmt.Errorf("%v (%T) is not a decimal number", data, data)
}
