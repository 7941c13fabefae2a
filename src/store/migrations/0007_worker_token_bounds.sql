-- Worker tokens are bounded: a token no worker has registered with expires, and an environment
-- keeps only its newest few. registered_at (microseconds since the Unix epoch) is when a worker
-- first registered with the token; such a token stays valid until rotation or delete. Tokens
-- that already registered workers are marked so, so running workers keep theirs. The order
-- tokens were issued in is their rowid.
ALTER TABLE worker_tokens ADD COLUMN registered_at INTEGER;

UPDATE worker_tokens SET registered_at = (
    SELECT min(workers.registered_at) FROM workers WHERE workers.token_hash = worker_tokens.token_hash
);
