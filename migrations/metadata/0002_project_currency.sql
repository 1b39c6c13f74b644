-- A project's default currency (ISO-4217 code): what a revenue event without a currency is stored
-- in, and what /metrics and /timeseries total when no currency parameter is given.
-- Set with ``eventlens project currency <project> <CODE>``.
ALTER TABLE projects ADD COLUMN currency VARCHAR(3) NOT NULL DEFAULT 'USD';
