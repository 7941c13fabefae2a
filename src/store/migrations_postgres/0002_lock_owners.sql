-- Locks are bound to the API key that took them: `holder_key` names it (`key:<name>`); a lock
-- taken before this migration has none, and is bound to the first key that renews it.
ALTER TABLE state_locks ADD COLUMN holder_key TEXT;

-- Every lock event names the key that made the request (`caller_key`) and, where one is in
-- force, the key holding the lock (`holder_key`); refused LOCKs and UNLOCKs by another key are
-- logged too.
ALTER TABLE state_lock_events
    ADD COLUMN caller_key TEXT,
    ADD COLUMN holder_key TEXT,
    DROP CONSTRAINT state_lock_events_kind_check,
    ADD CONSTRAINT state_lock_events_kind_check CHECK (kind IN ('granted', 'renewed', 'taken_over', 'unlocked', 'written', 'write_refused', 'lock_refused', 'unlock_refused')),
    DROP CONSTRAINT state_lock_events_refusal_check,
    ADD CONSTRAINT state_lock_events_refusal_check CHECK (refusal IS NULL OR refusal IN ('locked', 'stale_token', 'missing_token', 'other_key', 'admin_required'));
