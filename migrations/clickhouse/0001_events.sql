-- Every event sent by a client, plus the server's session markers.
-- ReplacingMergeTree on the event id: a replayed write-ahead-log segment reuses its
-- insert_deduplication_token and is dropped at insert; a client retry that lands in another batch
-- collapses on merge, and queries that count events count distinct ids, so counts are exact before
-- any merge happens. The hour in the key lets a narrow time range (live dashboards, /metrics of
-- the last minutes) read a few granules instead of a whole day.
CREATE TABLE IF NOT EXISTS events
(
    id String,
    project_id LowCardinality(String),
    name LowCardinality(String),
    device_id String,
    profile_id String,
    session_id String,
    created_at DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    origin LowCardinality(String),
    path String,
    title String,
    referrer String,
    referrer_name LowCardinality(String),
    referrer_type LowCardinality(String),
    utm_source String,
    utm_medium String,
    utm_campaign String,
    utm_term String,
    utm_content String,
    country LowCardinality(String),
    region LowCardinality(String),
    city String,
    browser LowCardinality(String),
    browser_version LowCardinality(String),
    os LowCardinality(String),
    os_version LowCardinality(String),
    device LowCardinality(String),
    brand LowCardinality(String),
    model LowCardinality(String),
    is_bot UInt8,
    properties Map(String, String),
    sdk_name LowCardinality(String),
    sdk_version LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (project_id, toStartOfHour(created_at), name, id)
SETTINGS non_replicated_deduplication_window = 10000;
