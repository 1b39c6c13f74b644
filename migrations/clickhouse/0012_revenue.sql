-- Revenue: the amount of an event that carried ``__revenue`` (the OpenPanel SDKs' revenue()) and
-- its ISO-4217 currency, in typed columns instead of the properties map. Events without revenue
-- hold 0 and ''. ADD COLUMN appends the columns after sdk_version on an existing table (where the
-- column lists in eventlens.records put them); the rows stored before read 0 and ''.
ALTER TABLE events ADD COLUMN IF NOT EXISTS revenue Decimal(18, 4);
ALTER TABLE events ADD COLUMN IF NOT EXISTS currency LowCardinality(String);

-- revenue_hourly: per project, bot flag, UTC hour and currency, the summed amounts and the number
-- of revenue events. /metrics and /timeseries read it when the hourly rollups apply (no filter,
-- whole hours); anything else reads the raw table. Amounts are summed per currency only: mixed
-- currencies are never added together.
CREATE TABLE IF NOT EXISTS revenue_hourly
(
    project_id LowCardinality(String),
    is_bot UInt8,
    hour DateTime('UTC'),
    currency LowCardinality(String),
    revenue SimpleAggregateFunction(sum, Decimal(38, 4)),
    events SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, is_bot, hour, currency)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS revenue_hourly_mv TO revenue_hourly AS
SELECT
    project_id,
    is_bot,
    toStartOfHour(created_at) AS hour,
    currency,
    toDecimal128(sum(revenue), 4) AS revenue,
    toUInt64(count()) AS events
FROM events
WHERE currency != '' AND name NOT IN ('session_start', 'session_end')
GROUP BY project_id, is_bot, hour, currency;

INSERT INTO revenue_hourly
SELECT * FROM (
    SELECT
        project_id,
        is_bot,
        toStartOfHour(created_at) AS hour,
        currency,
        toDecimal128(sum(revenue), 4),
        toUInt64(count())
    FROM events
    WHERE currency != '' AND name NOT IN ('session_start', 'session_end')
    GROUP BY project_id, is_bot, hour, currency
)
-- a re-run after a crash must not add the same rows twice: only into an empty table
WHERE (SELECT count() FROM revenue_hourly) = 0;
