-- Workers registered with an environment. Liveness is computed when read, from
-- last_heartbeat_at (microseconds since the Unix epoch); the worker's token is kept only as the
-- SHA-256 digest it registered with, so a rotation (which removes that digest from
-- worker_tokens) can be told apart from a deregistration. No foreign key to environments: a
-- worker of a deleted environment stays until its next heartbeat, which learns why it must stop.
CREATE TABLE workers (
    id TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    hostname TEXT NOT NULL,
    version TEXT NOT NULL,
    busy INTEGER NOT NULL CHECK (busy IN (0, 1)),
    registered_at INTEGER NOT NULL,
    last_heartbeat_at INTEGER NOT NULL
) STRICT;

CREATE INDEX workers_by_environment ON workers (environment_id, last_heartbeat_at);
CREATE INDEX workers_by_organization ON workers (organization_id, last_heartbeat_at);

-- The audit log. Documents are redacted before they are written. No foreign key to
-- environments: the log outlives what it describes.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    environment_id TEXT,
    environment_name TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    at INTEGER NOT NULL,
    before TEXT CHECK (before IS NULL OR json_valid(before)),
    after TEXT CHECK (after IS NULL OR json_valid(after))
) STRICT;

CREATE INDEX audit_events_by_environment ON audit_events (organization_id, environment_id, id);
