-- Session replay chunks (the OpenPanel web SDK's rrweb recorder): one row per chunk, stored with
-- the visit it records and never counted as an event. A chunk sent again (a retry) has the same
-- key (and the same started_at: the same partition) and replaces the first copy. The payload (a JSON array of rrweb events, up to about 1 MiB)
-- compresses well with ZSTD. Rows expire with the table's TTL, 30 days after they arrived.
CREATE TABLE IF NOT EXISTS replays
(
    project_id LowCardinality(String),
    session_id String,
    device_id String,
    chunk_index UInt32,
    started_at DateTime64(3, 'UTC'),
    ended_at DateTime64(3, 'UTC'),
    events_count UInt32,
    is_full_snapshot UInt8,
    payload String CODEC(ZSTD(3)),
    received_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(started_at)
ORDER BY (project_id, session_id, chunk_index)
TTL toDateTime(received_at) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000;
