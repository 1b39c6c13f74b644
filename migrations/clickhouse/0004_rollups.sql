-- Rollups for what dashboards read most, fed by materialized views on every insert into events.
--
-- events_hourly: per project, UTC hour and bot flag: the visitors (an exact set of device ids,
-- merged across hours at query time), client events and page views. /metrics and /timeseries
-- read it when no filter is set and the time zone and range fall on whole hours; anything else
-- reads the raw table. Counts are row counts: a replayed log segment reuses its deduplication
-- token, so ClickHouse drops the whole block before the views see it.
CREATE TABLE IF NOT EXISTS events_hourly
(
    project_id LowCardinality(String),
    hour DateTime('UTC'),
    is_bot UInt8,
    visitors AggregateFunction(uniqExact, String),
    events SimpleAggregateFunction(sum, UInt64),
    page_views SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, is_bot, hour);

CREATE MATERIALIZED VIEW IF NOT EXISTS events_hourly_mv TO events_hourly AS
SELECT
    project_id,
    toStartOfHour(created_at) AS hour,
    is_bot,
    uniqExactState(device_id) AS visitors,
    toUInt64(count()) AS events,
    toUInt64(countIf(name IN ('page_view', 'screen_view'))) AS page_views
FROM events
WHERE name NOT IN ('session_start', 'session_end')
GROUP BY project_id, hour, is_bot;

-- Catalogues for the filter pickers: event names and property keys seen per day.
CREATE TABLE IF NOT EXISTS event_catalog
(
    project_id LowCardinality(String),
    day Date,
    name LowCardinality(String),
    property_key String,
    is_bot UInt8,
    events SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, day, name, property_key, is_bot);

-- one row per event name (property_key '') and one per (name, property key)
CREATE MATERIALIZED VIEW IF NOT EXISTS event_catalog_mv TO event_catalog AS
SELECT
    project_id,
    toDate(created_at) AS day,
    name,
    arrayJoin(arrayConcat([''], mapKeys(properties))) AS property_key,
    is_bot,
    toUInt64(count()) AS events
FROM events
WHERE name NOT IN ('session_start', 'session_end')
GROUP BY project_id, day, name, property_key, is_bot;

-- Backfill what was stored before the views existed (a no-op on a new database).
INSERT INTO events_hourly
SELECT * FROM (
    SELECT
        project_id,
        toStartOfHour(created_at) AS hour,
        is_bot,
        uniqExactState(device_id),
        toUInt64(count()),
        toUInt64(countIf(name IN ('page_view', 'screen_view')))
    FROM (SELECT * FROM events LIMIT 1 BY id)
    WHERE name NOT IN ('session_start', 'session_end')
    GROUP BY project_id, hour, is_bot
)
-- a re-run after a crash must not add the same rows twice: only into an empty table
WHERE (SELECT count() FROM events_hourly) = 0;

INSERT INTO event_catalog
SELECT * FROM (
    SELECT
        project_id,
        toDate(created_at) AS day,
        name,
        arrayJoin(arrayConcat([''], mapKeys(properties))) AS property_key,
        is_bot,
        toUInt64(count())
    FROM (SELECT * FROM events LIMIT 1 BY id)
    WHERE name NOT IN ('session_start', 'session_end')
    GROUP BY project_id, day, name, property_key, is_bot
)
-- a re-run after a crash must not add the same rows twice: only into an empty table
WHERE (SELECT count() FROM event_catalog) = 0;
