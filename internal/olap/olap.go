// Package olap is the ClickHouse side of spendgate: schema migrations, the
// batch writer the ingest worker stores events with, and the aggregation
// queries budgets and reports read (always from the rollups, never a scan of
// raw events).
//
// Every statement works on ClickHouse 18.16 (what Debian ships) and on current
// releases: the native protocol only, named columns in every INSERT, no Map,
// no DateTime64, no LowCardinality, no insert_deduplication_token.
package olap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ErrBadDatabase is returned for a database name that is not a plain identifier.
var ErrBadDatabase = errors.New("database name must match ^[A-Za-z_][A-Za-z0-9_]*$")

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Options says how to reach ClickHouse.
type Options struct {
	// Addr is host:port of the native protocol. Default 127.0.0.1:9000.
	Addr string
	// Database holds spendgate's tables; created if missing. Default spendgate.
	Database string
	// User and Password authenticate; empty User is ClickHouse's "default".
	User     string
	Password string
	// TLS, if set, encrypts the connection.
	TLS *tls.Config
	// DialTimeout bounds connecting. Default 5s.
	DialTimeout time.Duration
	// Logger receives migration and retry messages. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock stamped into ingested_at. Default time.Now.
	Now func() time.Time
}

// Client is a connection pool to one ClickHouse database.
type Client struct {
	conn driver.Conn
	addr string
	db   string
	log  *slog.Logger
	now  func() time.Time
}

// Open connects and pings. The error names the address, so an operator sees
// "clickhouse at 127.0.0.1:9000: dial tcp …: connection refused".
func Open(ctx context.Context, o Options) (*Client, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:9000"
	}
	if o.Database == "" {
		o.Database = "spendgate"
	}
	if !identRE.MatchString(o.Database) {
		return nil, fmt.Errorf("clickhouse database %q: %w", o.Database, ErrBadDatabase)
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{o.Addr},
		Protocol:    clickhouse.Native,
		Auth:        clickhouse.Auth{Username: o.User, Password: o.Password},
		TLS:         o.TLS,
		DialTimeout: o.DialTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse at %s: %w", o.Addr, err)
	}
	c := &Client{conn: conn, addr: o.Addr, db: o.Database, log: o.Logger.With("component", "olap"), now: o.Now}
	if err := c.Ping(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// Ping checks the server answers.
func (c *Client) Ping(ctx context.Context) error {
	if err := c.conn.Ping(ctx); err != nil {
		return c.wrap(err)
	}
	return nil
}

// Database is the database the client reads and writes.
func (c *Client) Database() string { return c.db }

// Addr is the server address, for messages.
func (c *Client) Addr() string { return c.addr }

// Close closes the pool.
func (c *Client) Close() error { return c.conn.Close() }

// Exec runs a statement with {database} replaced; for tests and tools.
func (c *Client) Exec(ctx context.Context, stmt string, args ...any) error {
	if err := c.conn.Exec(ctx, c.sql(stmt), args...); err != nil {
		return c.wrap(err)
	}
	return nil
}

// DropDatabase removes the client's database and everything in it (tests).
func (c *Client) DropDatabase(ctx context.Context) error {
	return c.Exec(ctx, "DROP DATABASE IF EXISTS {database}")
}

func (c *Client) sql(s string) string { return strings.ReplaceAll(s, "{database}", "`"+c.db+"`") }

func (c *Client) wrap(err error) error { return fmt.Errorf("clickhouse at %s: %w", c.addr, err) }

// RollupParts reports how many active data parts the rollup table has and
// how many merges of it are running: a query reads every active part, and
// ClickHouse merges freshly inserted parts in the background.
func (c *Client) RollupParts(ctx context.Context) (parts, merging uint64, err error) {
	err = c.conn.QueryRow(ctx, `SELECT
		(SELECT count() FROM system.parts WHERE database = ? AND table = 'cost_rollup_15m' AND active),
		(SELECT count() FROM system.merges WHERE database = ? AND table = 'cost_rollup_15m')`,
		c.db, c.db).Scan(&parts, &merging)
	if err != nil {
		return 0, 0, c.wrap(err)
	}
	return parts, merging, nil
}
