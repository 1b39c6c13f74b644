-- The times of a session's entry and exit page views (those that gave entry_path and exit_path), so
-- a shard restarted from the session's row still knows whether a page view arriving out of order
-- afterwards is earlier than the entry page view or later than the exit one. 0 (the epoch) in rows
-- written before: a restarted shard then takes the session's start and end instead.
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS entry_at DateTime64(3, 'UTC') AFTER exit_path;
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS exit_at DateTime64(3, 'UTC') AFTER entry_at;
