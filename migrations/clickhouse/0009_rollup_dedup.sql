-- The rollups deduplicate a replayed batch too. A batch inserted again with its token (a
-- write-ahead-log segment replayed after a crash) is dropped by events, but the materialized views
-- still push their blocks into the rollup tables, which deduplicate only with a window of their own:
-- without one a replay counted twice in every rollup (found by tests/unit/test_storage_insights.py
-- on chDB 26.9). Idempotent: setting the same value again changes nothing.
ALTER TABLE events_hourly MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE event_catalog MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE user_hours MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE funnel_events MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE events_dims_hourly MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE events_daily MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE events_dims_daily MODIFY SETTING non_replicated_deduplication_window = 10000;
