-- Worker tokens are bounded: a token no worker has registered with expires, and an environment
-- keeps only its newest few. registered_at (microseconds since the Unix epoch) is when a worker
-- first registered with the token; such a token stays valid until rotation or delete. Tokens
-- that already registered workers are marked so, so running workers keep theirs. issue_order
-- is the order tokens were issued in (writers are serialized, so it follows commit order).
ALTER TABLE worker_tokens ADD COLUMN registered_at BIGINT;
ALTER TABLE worker_tokens ADD COLUMN issue_order BIGINT GENERATED ALWAYS AS IDENTITY;

UPDATE worker_tokens SET registered_at = (
    SELECT min(workers.registered_at) FROM workers WHERE workers.token_hash = worker_tokens.token_hash
);

CREATE INDEX worker_tokens_unused ON worker_tokens (environment_id, issue_order)
    WHERE registered_at IS NULL;
