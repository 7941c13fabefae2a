-- One row that the readiness probe (`GET /ready`) rewrites and commits: proof that a write reaches
-- the disk now (a full disk fails it), not only that the file can be read.
CREATE TABLE readiness (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
) STRICT;
