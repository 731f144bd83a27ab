-- The raw table: one row per counted cost event (SPEC.md). A duplicate or a
-- rejected event never appears here: the ingest worker inserts a redelivered
-- message only after checking its event_id is not stored yet.
-- attributes travel as two parallel arrays: ClickHouse 18.16 has no Map type.
-- Read them with attr_values[indexOf(attr_keys, 'business_id')].
CREATE TABLE IF NOT EXISTS {database}.cost_events
(
    event_id    String,
    ts          DateTime,           -- UTC, when the call happened (seconds)
    service     String,
    operation   String,
    cost_usd    Decimal(18, 9),     -- exact; < 1e9 per event
    units       UInt64,
    unit        String,
    attr_keys   Array(String),
    attr_values Array(String),
    ingested_at DateTime,           -- UTC, when the batch was stored
    stream_seq  UInt64              -- COST_EVENTS stream sequence it came from
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (ts, service, operation);
