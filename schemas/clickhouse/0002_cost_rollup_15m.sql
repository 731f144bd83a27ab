-- Spend per 15 minutes, service and operation, filled by a materialized view
-- on every insert into cost_events. Every time zone in use today has an offset
-- that is a multiple of 15 minutes, so local midnights (Asia/Kolkata: 18:30
-- UTC, Asia/Kathmandu: 18:15 UTC) fall on bucket boundaries and a day, week or
-- month in any zone is an exact sum of whole buckets: a month reads at most
-- 2,976 buckets per service and operation, however many events are stored.
-- SummingMergeTree folds rows as parts merge; queries still sum() and GROUP BY.
-- Sums are Decimal(38, 9) so no total overflows.
CREATE TABLE IF NOT EXISTS {database}.cost_rollup_15m
(
    bucket    DateTime,             -- UTC start of the 15 minutes
    service   String,
    operation String,
    cost_usd  Decimal(38, 9),
    events    UInt64,
    units     UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, service, operation);

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.cost_rollup_15m_mv
TO {database}.cost_rollup_15m
AS SELECT
    toStartOfFifteenMinutes(ts) AS bucket,
    service,
    operation,
    sum(cost_usd) AS cost_usd,
    count() AS events,
    sum(units) AS units
FROM {database}.cost_events
GROUP BY bucket, service, operation;
