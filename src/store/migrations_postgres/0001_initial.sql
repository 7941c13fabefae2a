-- The whole schema of the PostgreSQL store: the tables of the SQLite migrations 0001 to 0003 with
-- the same columns and meanings. Timestamps are microseconds since the Unix epoch (BIGINT), as on
-- SQLite, so both stores read and write the same values; JSON documents are TEXT, kept byte for
-- byte. Identifiers and names use the "C" collation so that ordering and uniqueness are by bytes,
-- as on SQLite, whatever the cluster's locale.

CREATE TABLE organizations (
    id TEXT COLLATE "C" PRIMARY KEY,
    namespace_state TEXT NOT NULL CHECK (namespace_state IN ('provisioning', 'ready', 'error')),
    provisioning_workflow_id TEXT,
    temporal_namespace TEXT,
    temporal_namespace_id TEXT,
    provisioned_at BIGINT,
    error_message TEXT,
    created_at BIGINT NOT NULL,
    -- Which process runs the provisioning workflow, and until when (the database's clock) its
    -- claim holds unless renewed: replicas on one database provision an organization once.
    provisioning_claimed_by TEXT,
    provisioning_claim_expires_at TIMESTAMPTZ
);

CREATE TABLE environments (
    id TEXT COLLATE "C" PRIMARY KEY,
    organization_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT COLLATE "C" NOT NULL CHECK (length(name) BETWEEN 2 AND 100),
    display_name TEXT,
    description TEXT,
    status TEXT NOT NULL CHECK (status IN ('provisioning', 'ready', 'active', 'error', 'inactive')),
    requested_status TEXT NOT NULL CHECK (requested_status IN ('active', 'inactive')),
    configuration TEXT,
    metadata TEXT,
    tags TEXT,
    settings TEXT,
    execution_environment TEXT,
    temporal_namespace TEXT,
    temporal_namespace_id TEXT,
    provisioning_workflow_id TEXT,
    provisioned_at BIGINT,
    error_message TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT,
    UNIQUE (organization_id, name)
);

CREATE INDEX environments_by_creation ON environments (organization_id, created_at, name);

CREATE TABLE worker_tokens (
    token_hash TEXT COLLATE "C" PRIMARY KEY,
    organization_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    environment_id TEXT COLLATE "C" NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

CREATE INDEX worker_tokens_by_environment ON worker_tokens (environment_id);

-- No foreign key to environments: a worker of a deleted environment stays until its next
-- heartbeat, which learns why it must stop.
CREATE TABLE workers (
    id TEXT COLLATE "C" PRIMARY KEY,
    organization_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    environment_id TEXT COLLATE "C" NOT NULL,
    token_hash TEXT NOT NULL,
    hostname TEXT NOT NULL,
    version TEXT NOT NULL,
    busy BOOLEAN NOT NULL,
    registered_at BIGINT NOT NULL,
    last_heartbeat_at BIGINT NOT NULL
);

CREATE INDEX workers_by_environment ON workers (environment_id, last_heartbeat_at);
CREATE INDEX workers_by_organization ON workers (organization_id, last_heartbeat_at);

CREATE TABLE audit_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    environment_id TEXT COLLATE "C",
    environment_name TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    at BIGINT NOT NULL,
    before TEXT,
    after TEXT
);

CREATE INDEX audit_events_by_environment ON audit_events (organization_id, environment_id, id);

-- The HTTP state backend: no foreign key to organizations (a key's organization can keep state
-- before it ever touches the Environments API).
CREATE TABLE state_documents (
    organization_id TEXT COLLATE "C" NOT NULL,
    workspace TEXT COLLATE "C" NOT NULL CHECK (length(workspace) BETWEEN 1 AND 128),
    document TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (organization_id, workspace)
);

CREATE TABLE state_locks (
    organization_id TEXT COLLATE "C" NOT NULL,
    workspace TEXT COLLATE "C" NOT NULL CHECK (length(workspace) BETWEEN 1 AND 128),
    lock_id TEXT NOT NULL,
    info TEXT NOT NULL,
    fencing_token BIGINT NOT NULL CHECK (fencing_token > 0),
    lease_expires_at BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL,
    PRIMARY KEY (organization_id, workspace)
);

CREATE TABLE state_fencing_tokens (
    organization_id TEXT COLLATE "C" NOT NULL,
    workspace TEXT COLLATE "C" NOT NULL CHECK (length(workspace) BETWEEN 1 AND 128),
    last_token BIGINT NOT NULL CHECK (last_token > 0),
    PRIMARY KEY (organization_id, workspace)
);

CREATE TABLE state_lock_events (
    sequence BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id TEXT COLLATE "C" NOT NULL,
    workspace TEXT COLLATE "C" NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('granted', 'renewed', 'taken_over', 'unlocked', 'written', 'write_refused')),
    lock_id TEXT,
    who TEXT,
    operation TEXT,
    fencing_token BIGINT,
    lease_expires_at BIGINT,
    holder_lock_id TEXT,
    refusal TEXT CHECK (refusal IS NULL OR refusal IN ('locked', 'stale_token', 'missing_token'))
);

CREATE INDEX state_lock_events_by_workspace ON state_lock_events (organization_id, workspace, sequence);

-- One row that the readiness probe (`GET /ready`) rewrites and commits: proof that a write
-- commits now (a full disk, a read-only standby or a stuck lock fails it).
CREATE TABLE readiness (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at BIGINT NOT NULL
);
