package olap

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/spendgate/spendgate/schemas"
)

// Migration is one numbered DDL file of schemas/clickhouse.
type Migration struct {
	Version    uint32
	Name       string
	Statements []string
}

// Migrations reads the embedded DDL files in version order.
func Migrations() ([]Migration, error) {
	files, err := fs.Glob(schemas.ClickHouse, "clickhouse/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, f := range files {
		base := strings.TrimSuffix(path.Base(f), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.ParseUint(num, 10, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_what.sql", f)
		}
		b, err := fs.ReadFile(schemas.ClickHouse, f)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: uint32(v), Name: name, Statements: splitStatements(string(b))})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("two migrations numbered %d", ms[i].Version)
		}
	}
	return ms, nil
}

// splitStatements splits on ";" at a line end and drops "--" comment lines.
func splitStatements(s string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			if st := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); st != "" {
				out = append(out, st)
			}
			cur.Reset()
		}
	}
	if st := strings.TrimSpace(cur.String()); st != "" {
		out = append(out, st)
	}
	return out
}

// Migrate creates the database if needed and applies, in order, every
// migration not yet recorded in schema_migrations. Statements are idempotent
// (IF NOT EXISTS), so a migration cut short, or run by two workers starting
// at once, is simply applied again. It returns the versions it applied.
func (c *Client) Migrate(ctx context.Context) ([]uint32, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	for _, st := range []string{
		"CREATE DATABASE IF NOT EXISTS {database}",
		`CREATE TABLE IF NOT EXISTS {database}.schema_migrations
		(version UInt32, name String, applied_at DateTime)
		ENGINE = MergeTree ORDER BY version`,
	} {
		if err := c.Exec(ctx, st); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	done := map[uint32]bool{}
	rows, err := c.conn.Query(ctx, c.sql("SELECT DISTINCT version FROM {database}.schema_migrations"))
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", c.wrap(err))
	}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("migrate: %w", c.wrap(err))
		}
		done[v] = true
	}
	rows.Close()
	var applied []uint32
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		for _, st := range m.Statements {
			if err := c.Exec(ctx, st); err != nil {
				return applied, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
		}
		if err := c.recordMigration(ctx, m); err != nil {
			return applied, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
		c.log.Info("applied migration", "version", m.Version, "name", m.Name, "database", c.db)
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// recordMigration inserts through a batch: on ClickHouse 18.16 an INSERT …
// VALUES sent with Exec never completes over the native protocol.
func (c *Client) recordMigration(ctx context.Context, m Migration) error {
	b, err := c.conn.PrepareBatch(ctx, c.sql("INSERT INTO {database}.schema_migrations (version, name, applied_at)"))
	if err != nil {
		return c.wrap(err)
	}
	defer b.Abort()
	if err := b.Append(m.Version, m.Name, c.now().UTC()); err != nil {
		return err
	}
	if err := b.Send(); err != nil {
		return c.wrap(err)
	}
	return nil
}
