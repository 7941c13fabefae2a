-- Organizations and the state of their Temporal namespace.
CREATE TABLE organizations (
    id TEXT PRIMARY KEY NOT NULL,
    namespace_state TEXT NOT NULL CHECK (namespace_state IN ('provisioning', 'ready', 'error')),
    provisioning_workflow_id TEXT,
    temporal_namespace TEXT,
    temporal_namespace_id TEXT,
    provisioned_at INTEGER,
    error_message TEXT,
    created_at INTEGER NOT NULL
) STRICT;

-- Environments; timestamps are microseconds since the Unix epoch, JSON columns hold objects/arrays.
CREATE TABLE environments (
    id TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 2 AND 100),
    display_name TEXT,
    description TEXT,
    status TEXT NOT NULL CHECK (status IN ('provisioning', 'ready', 'active', 'error', 'inactive')),
    requested_status TEXT NOT NULL CHECK (requested_status IN ('active', 'inactive')),
    configuration TEXT CHECK (configuration IS NULL OR json_valid(configuration)),
    metadata TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
    tags TEXT CHECK (tags IS NULL OR json_valid(tags)),
    settings TEXT CHECK (settings IS NULL OR json_valid(settings)),
    execution_environment TEXT CHECK (execution_environment IS NULL OR json_valid(execution_environment)),
    temporal_namespace TEXT,
    temporal_namespace_id TEXT,
    provisioning_workflow_id TEXT,
    provisioned_at INTEGER,
    error_message TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    created_by TEXT,
    UNIQUE (organization_id, name)
) STRICT;

CREATE INDEX environments_by_creation ON environments (organization_id, created_at, name);

-- Worker tokens: only the SHA-256 digest of each token is kept.
CREATE TABLE worker_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX worker_tokens_by_environment ON worker_tokens (environment_id);
