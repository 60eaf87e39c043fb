-- knolyx-webhook-postgres: the idempotency table.
-- {table} is the (quoted, possibly schema-qualified) table name and {index} the unqualified
-- name of its expiry index; `PostgresStore::schema_sql()` returns this text filled in.
CREATE TABLE IF NOT EXISTS {table} (
    id               TEXT        PRIMARY KEY,
    state            TEXT        NOT NULL CHECK (state IN ('in_progress', 'completed')),
    owner            TEXT,
    lease_expires_at TIMESTAMPTZ,
    retain_until     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (
        (state = 'in_progress' AND owner IS NOT NULL AND lease_expires_at IS NOT NULL
            AND retain_until IS NULL)
        OR (state = 'completed' AND owner IS NULL AND lease_expires_at IS NULL
            AND retain_until IS NOT NULL)
    )
);

-- When each row expires (the lease or the retention, whichever its state has): what
-- `purge_expired()` deletes by.
CREATE INDEX IF NOT EXISTS {index} ON {table} ((COALESCE(lease_expires_at, retain_until)));
