package olap

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spendgate/spendgate/internal/events"
)

// Row is one event to store with the stream sequence it came from.
type Row struct {
	Event     events.Event
	StreamSeq uint64
}

const insertEvents = `INSERT INTO {database}.cost_events
(event_id, ts, service, operation, cost_usd, units, unit, attr_keys, attr_values, ingested_at, stream_seq)`

// Writer stores batches of events; the ingest worker depends on this, not on
// the concrete client, so tests can inject failures.
type Writer interface {
	// InsertEvents stores rows as one ClickHouse insert: all or nothing.
	InsertEvents(ctx context.Context, rows []Row) error
	// StoredEventIDs returns which of ids are already in cost_events, looking
	// only at events timed within [from, to] (both inclusive).
	StoredEventIDs(ctx context.Context, ids []string, from, to time.Time) (map[string]struct{}, error)
}

var _ Writer = (*Client)(nil)

// InsertEvents writes rows as one batch insert, column by column.
func (c *Client) InsertEvents(ctx context.Context, rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := c.conn.PrepareBatch(ctx, c.sql(insertEvents))
	if err != nil {
		return fmt.Errorf("insert cost_events: %w", c.wrap(err))
	}
	defer batch.Abort()
	n := len(rows)
	ids := make([]string, n)
	ts := make([]time.Time, n)
	services := make([]string, n)
	ops := make([]string, n)
	costs := make([]decimal.Decimal, n)
	units := make([]uint64, n)
	unit := make([]string, n)
	ingested := make([]time.Time, n)
	seqs := make([]uint64, n)
	now := c.now().UTC()
	for i := range rows {
		e := &rows[i].Event
		ids[i], ts[i], services[i], ops[i] = e.EventID, e.TS, e.Service, e.Operation
		costs[i], units[i], unit[i] = e.CostUSD, e.Units, e.Unit
		ingested[i], seqs[i] = now, rows[i].StreamSeq
	}
	for i, col := range []any{ids, ts, services, ops, costs, units, unit} {
		if err := batch.Column(i).Append(col); err != nil {
			return fmt.Errorf("insert cost_events: column %d: %w", i, err)
		}
	}
	keys, values := batch.Column(7), batch.Column(8)
	for i := range rows {
		if err := keys.AppendRow(rows[i].Event.AttrKeys); err != nil {
			return fmt.Errorf("insert cost_events: attr_keys: %w", err)
		}
		if err := values.AppendRow(rows[i].Event.AttrValues); err != nil {
			return fmt.Errorf("insert cost_events: attr_values: %w", err)
		}
	}
	if err := batch.Column(9).Append(ingested); err != nil {
		return fmt.Errorf("insert cost_events: ingested_at: %w", err)
	}
	if err := batch.Column(10).Append(seqs); err != nil {
		return fmt.Errorf("insert cost_events: stream_seq: %w", err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert cost_events: %w", c.wrap(err))
	}
	return nil
}

// StoredEventIDs asks which ids are stored. The ts bounds let ClickHouse skip
// every partition and granule outside them (cost_events is ordered by ts).
func (c *Client) StoredEventIDs(ctx context.Context, ids []string, from, to time.Time) (map[string]struct{}, error) {
	found := map[string]struct{}{}
	if len(ids) == 0 {
		return found, nil
	}
	rows, err := c.conn.Query(ctx, c.sql(`SELECT DISTINCT event_id FROM {database}.cost_events
		WHERE ts >= toDateTime(?) AND ts <= toDateTime(?) AND has(?, event_id)`),
		from.Unix(), to.Unix(), ids)
	if err != nil {
		return nil, fmt.Errorf("look up stored event ids: %w", c.wrap(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("look up stored event ids: %w", c.wrap(err))
		}
		found[id] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up stored event ids: %w", c.wrap(err))
	}
	return found, nil
}
