// Package schemas holds the contract's machine-readable parts: the JSON
// Schemas of every message on the wire and the ClickHouse DDL, embedded so the
// binaries carry them and tests read the very files users read.
package schemas

import "embed"

// ClickHouse holds the numbered DDL migrations, clickhouse/NNNN_name.sql.
// Each file is one or more statements separated by ";" at a line end, with
// {database} standing for the configured database.
//
//go:embed clickhouse/*.sql
var ClickHouse embed.FS

// JSON holds the JSON Schemas (*.schema.json).
//
//go:embed *.schema.json
var JSON embed.FS
