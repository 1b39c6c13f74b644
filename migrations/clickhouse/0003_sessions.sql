-- One row per session and snapshot. A shard writes a complete snapshot of every session that
-- changed at each flush (and a final one, is_closed = 1, when the session ends); the newest
-- version replaces older ones. Reads use FINAL or argMax(..., version) on the session key, so a
-- growing session is exact after every flush. Complete rows (not deltas) avoid the
-- VersionedCollapsingMergeTree trap where a cancel row and its state row race or dedupe apart.
CREATE TABLE IF NOT EXISTS sessions
(
    project_id LowCardinality(String),
    session_id String,
    device_id String,
    profile_id String,
    -- time of the event that opened the session; never changes, so it can key the table
    -- (started_at is the earliest event and may move back when an earlier event arrives late)
    opened_at DateTime64(3, 'UTC'),
    started_at DateTime64(3, 'UTC'),
    ended_at DateTime64(3, 'UTC'),
    duration Float64,
    entry_path String,
    exit_path String,
    origin LowCardinality(String),
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
    sdk_name LowCardinality(String),
    sdk_version LowCardinality(String),
    page_views UInt32,
    events UInt32,
    is_bounce UInt8,
    is_closed UInt8,
    version UInt64,
    -- the buffer shard that owns the session: a restarted shard reads its open sessions back
    shard UInt16
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(opened_at)
ORDER BY (project_id, toDate(opened_at), session_id)
SETTINGS non_replicated_deduplication_window = 10000;
