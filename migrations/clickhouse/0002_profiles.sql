-- Profile state written by identify; the newest row per (project, profile) wins.
CREATE TABLE IF NOT EXISTS profiles
(
    project_id LowCardinality(String),
    profile_id String,
    first_name String,
    last_name String,
    email String,
    avatar String,
    properties Map(String, String),
    updated_at DateTime64(3, 'UTC'),
    event_id String
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (project_id, profile_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- increment/decrement: one row per operation keyed by its event id, so a replayed or retried
-- operation collapses instead of adding twice; the value of a counter is sum(delta) over distinct ids.
CREATE TABLE IF NOT EXISTS profile_counters
(
    project_id LowCardinality(String),
    profile_id String,
    property String,
    delta Float64,
    created_at DateTime64(3, 'UTC'),
    event_id String
)
ENGINE = ReplacingMergeTree
ORDER BY (project_id, profile_id, property, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- alias links another id (usually an anonymous device id) to a profile.
CREATE TABLE IF NOT EXISTS profile_aliases
(
    project_id LowCardinality(String),
    alias String,
    profile_id String,
    created_at DateTime64(3, 'UTC'),
    event_id String
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (project_id, alias)
SETTINGS non_replicated_deduplication_window = 10000;
