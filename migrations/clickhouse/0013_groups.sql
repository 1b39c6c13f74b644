-- Groups (B2B accounts), from the OpenPanel SDK's ``group`` (upsertGroup) and ``assign_group``
-- (setGroup/setGroups) messages, and the group ids every tracked event carries.
--
-- groups: a group's state; a ``group`` message merges into the stored state in the group's shard
-- (an empty name or type keeps the stored one, properties merge key by key, created_at is the
-- first time the group was seen), and the newest row per (project, group) wins, as for profiles.
CREATE TABLE IF NOT EXISTS groups
(
    project_id LowCardinality(String),
    group_id String,
    type LowCardinality(String),
    name String,
    properties Map(String, String),
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (project_id, group_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- profile_groups: which profiles belong to which groups; one row per (profile, group), a
-- repeated assignment keeps the newest time.
CREATE TABLE IF NOT EXISTS profile_groups
(
    project_id LowCardinality(String),
    profile_id String,
    group_id String,
    assigned_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(assigned_at)
ORDER BY (project_id, profile_id, group_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- events.groups: the group ids the client sent with the event (``track`` payload ``groups``).
-- Rows stored before this migration read as an empty array.
ALTER TABLE events ADD COLUMN IF NOT EXISTS groups Array(String);
