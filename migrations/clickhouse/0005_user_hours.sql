-- The hours in which each user (profile id where the event has one, else device id) was active:
-- retention reads this set instead of every event. Duplicates are harmless (queries group by
-- user and period), so a plain ReplacingMergeTree on the whole row is enough.
CREATE TABLE IF NOT EXISTS user_hours
(
    project_id LowCardinality(String),
    is_bot UInt8,
    hour DateTime('UTC'),
    user String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (project_id, is_bot, hour, user);

CREATE MATERIALIZED VIEW IF NOT EXISTS user_hours_mv TO user_hours AS
SELECT
    project_id,
    is_bot,
    toStartOfHour(created_at) AS hour,
    if(profile_id != '', profile_id, device_id) AS user
FROM events
WHERE name NOT IN ('session_start', 'session_end')
GROUP BY project_id, is_bot, hour, user;

INSERT INTO user_hours
SELECT * FROM (
    SELECT
        project_id,
        is_bot,
        toStartOfHour(created_at) AS hour,
        if(profile_id != '', profile_id, device_id) AS user
    FROM events
    WHERE name NOT IN ('session_start', 'session_end')
    GROUP BY project_id, is_bot, hour, user
)
-- a re-run after a crash must not add the same rows twice: only into an empty table
WHERE (SELECT count() FROM user_hours) = 0;
