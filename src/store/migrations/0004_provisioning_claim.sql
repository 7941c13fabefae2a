-- Which process runs an organization's provisioning workflow, and until when its claim holds
-- unless renewed (microseconds since the Unix epoch, SQLite's clock): two processes on one
-- database file provision an organization once.
ALTER TABLE organizations ADD COLUMN provisioning_claimed_by TEXT;
ALTER TABLE organizations ADD COLUMN provisioning_claim_expires_at INTEGER;
