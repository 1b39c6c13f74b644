-- Projects, their API clients and the daily salts of the cookieless device hash.
-- Portable to SQLite and MariaDB/MySQL: plain types, explicit key lengths, timestamps as
-- ISO-8601 UTC text (both engines sort and compare it the same way).

CREATE TABLE IF NOT EXISTS projects (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    created_at VARCHAR(32) NOT NULL
);

-- secret_hash is NULL for browser (origin-restricted) write clients; origins is a JSON list.
CREATE TABLE IF NOT EXISTS clients (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    project_id VARCHAR(64) NOT NULL,
    name VARCHAR(255) NOT NULL DEFAULT '',
    type VARCHAR(16) NOT NULL,
    secret_hash VARCHAR(255) NULL,
    origins TEXT NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    FOREIGN KEY (project_id) REFERENCES projects (id)
);

CREATE TABLE IF NOT EXISTS salts (
    day VARCHAR(10) NOT NULL PRIMARY KEY,
    salt VARCHAR(64) NOT NULL,
    created_at VARCHAR(32) NOT NULL
);
