-- Paging the audit log of a whole organization (`WHERE organization_id = $1 AND id > $3 ORDER BY
-- id`) and pruning lock events by age (`--state-event-retention`).
CREATE INDEX audit_events_by_organization ON audit_events (organization_id, id);
CREATE INDEX state_lock_events_by_time ON state_lock_events (at);
