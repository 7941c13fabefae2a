-- Locks are bound to the API key that took them: `holder_key` names it (`key:<name>`); a lock
-- taken before this migration has none, and is bound to the first key that renews it.
ALTER TABLE state_locks ADD COLUMN holder_key TEXT;

-- Every lock event names the key that made the request (`caller_key`) and, where one is in
-- force, the key holding the lock (`holder_key`); refused LOCKs and UNLOCKs by another key are
-- logged too. SQLite cannot widen a CHECK constraint in place, so the table is rebuilt, keeping
-- every event and its sequence number.
CREATE TABLE state_lock_events_owned (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL,
    workspace TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('granted', 'renewed', 'taken_over', 'unlocked', 'written', 'write_refused', 'lock_refused', 'unlock_refused')),
    lock_id TEXT,
    who TEXT,
    operation TEXT,
    fencing_token INTEGER,
    lease_expires_at INTEGER,
    holder_lock_id TEXT,
    refusal TEXT CHECK (refusal IS NULL OR refusal IN ('locked', 'stale_token', 'missing_token', 'other_key', 'admin_required')),
    caller_key TEXT,
    holder_key TEXT
) STRICT;

INSERT INTO state_lock_events_owned (sequence, organization_id, workspace, at, kind, lock_id, who,
    operation, fencing_token, lease_expires_at, holder_lock_id, refusal)
SELECT sequence, organization_id, workspace, at, kind, lock_id, who, operation, fencing_token,
    lease_expires_at, holder_lock_id, refusal FROM state_lock_events;

DROP TABLE state_lock_events;
ALTER TABLE state_lock_events_owned RENAME TO state_lock_events;
CREATE INDEX state_lock_events_by_workspace ON state_lock_events (organization_id, workspace, sequence);
