-- The HTTP state backend of `envform serve` (DESIGN §7). Every table is keyed by organization
-- and workspace: organizations are separate namespaces. Timestamps are microseconds since the
-- Unix epoch. No foreign key to `organizations`: a key's organization can keep state before it
-- ever touches the Environments API.

-- The state document of each workspace, stored byte for byte.
CREATE TABLE state_documents (
    organization_id TEXT NOT NULL,
    workspace TEXT NOT NULL CHECK (length(workspace) BETWEEN 1 AND 128),
    document TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (organization_id, workspace)
) STRICT;

-- The lock of each workspace, at most one; an expired lease leaves the row until it is taken
-- over or released.
CREATE TABLE state_locks (
    organization_id TEXT NOT NULL,
    workspace TEXT NOT NULL CHECK (length(workspace) BETWEEN 1 AND 128),
    lock_id TEXT NOT NULL,
    info TEXT NOT NULL CHECK (json_valid(info)),
    fencing_token INTEGER NOT NULL CHECK (fencing_token > 0),
    lease_expires_at INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL,
    PRIMARY KEY (organization_id, workspace)
) STRICT;

-- The last fencing token each workspace issued: tokens only grow and are never reused, even
-- after the lock is released or the server restarts.
CREATE TABLE state_fencing_tokens (
    organization_id TEXT NOT NULL,
    workspace TEXT NOT NULL CHECK (length(workspace) BETWEEN 1 AND 128),
    last_token INTEGER NOT NULL CHECK (last_token > 0),
    PRIMARY KEY (organization_id, workspace)
) STRICT;

-- Every grant, renewal, takeover, release and write, in order; never the document itself.
CREATE TABLE state_lock_events (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL,
    workspace TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('granted', 'renewed', 'taken_over', 'unlocked', 'written', 'write_refused')),
    lock_id TEXT,
    who TEXT,
    operation TEXT,
    fencing_token INTEGER,
    lease_expires_at INTEGER,
    holder_lock_id TEXT,
    refusal TEXT CHECK (refusal IS NULL OR refusal IN ('locked', 'stale_token', 'missing_token'))
) STRICT;

CREATE INDEX state_lock_events_by_workspace ON state_lock_events (organization_id, workspace, sequence);
