-- Daily rollups chained from the hourly ones (their materialized views fire on the hourly
-- tables' inserts, which are already aggregated, so they cost little at ingest). /metrics reads
-- whole UTC days here and only the edge hours of its range from the hourly tables: merging ~30
-- daily visitor sets instead of ~720 hourly ones. Visitor sets are unions, so any split of the
-- range into days and hours gives the exact same answer.
CREATE TABLE IF NOT EXISTS events_daily
(
    project_id LowCardinality(String),
    is_bot UInt8,
    day Date,
    visitors AggregateFunction(uniqExact, String),
    events SimpleAggregateFunction(sum, UInt64),
    page_views SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, is_bot, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS events_daily_mv TO events_daily AS
SELECT
    project_id,
    is_bot,
    toDate(hour) AS day,
    uniqExactMergeState(visitors) AS visitors,
    sum(events) AS events,
    sum(page_views) AS page_views
FROM events_hourly
GROUP BY project_id, is_bot, day;

CREATE TABLE IF NOT EXISTS events_dims_daily
(
    project_id LowCardinality(String),
    dim LowCardinality(String),
    is_bot UInt8,
    day Date,
    value String,
    visitors AggregateFunction(uniqExact, String),
    events SimpleAggregateFunction(sum, UInt64),
    page_views SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, dim, is_bot, value, day)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS events_dims_daily_mv TO events_dims_daily AS
SELECT
    project_id,
    dim,
    is_bot,
    toDate(hour) AS day,
    value,
    uniqExactMergeState(visitors) AS visitors,
    sum(events) AS events,
    sum(page_views) AS page_views
FROM events_dims_hourly
GROUP BY project_id, dim, is_bot, day, value;

INSERT INTO events_daily
SELECT * FROM (
    SELECT project_id, is_bot, toDate(hour) AS day, uniqExactMergeState(visitors), sum(events), sum(page_views)
    FROM events_hourly
    GROUP BY project_id, is_bot, day
)
-- a re-run after a crash must not add the same rows twice: only into an empty table
WHERE (SELECT count() FROM events_daily) = 0;

INSERT INTO events_dims_daily
SELECT * FROM (
    SELECT project_id, dim, is_bot, toDate(hour) AS day, value, uniqExactMergeState(visitors), sum(events), sum(page_views)
    FROM events_dims_hourly
    GROUP BY project_id, dim, is_bot, day, value
)
-- a re-run after a crash must not add the same rows twice: only into an empty table
WHERE (SELECT count() FROM events_dims_daily) = 0;
