-- A project's goals: page views whose path matches a pattern (kind page_view, pattern in path),
-- or events of a name (kind event, in event), optionally with one property key = value.
-- Names are unique per project. Managed with ``eventlens goal`` and the /projects/{p}/goals API.
CREATE TABLE IF NOT EXISTS goals (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    project_id VARCHAR(64) NOT NULL,
    name VARCHAR(255) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    path VARCHAR(1000) NULL,
    event VARCHAR(255) NULL,
    property_key VARCHAR(255) NULL,
    property_value VARCHAR(1000) NULL,
    created_at VARCHAR(32) NOT NULL,
    UNIQUE (project_id, name),
    FOREIGN KEY (project_id) REFERENCES projects (id)
);
