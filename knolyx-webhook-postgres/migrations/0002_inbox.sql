-- knolyx-webhook-postgres: the inbox table (`PostgresInbox`).
-- {table} is the (quoted, possibly schema-qualified) table name, {due_index},
-- {done_index} and {dead_index} the unqualified names of its indexes; `PostgresInbox::schema_sql()` returns
-- this text filled in.
CREATE TABLE IF NOT EXISTS {table} (
    id          TEXT        PRIMARY KEY,
    event_type  TEXT        NOT NULL,
    body        BYTEA       NOT NULL,
    state       TEXT        NOT NULL CHECK (state IN ('pending', 'running', 'dead', 'done')),
    attempts    INTEGER     NOT NULL DEFAULT 0,
    next_run_at TIMESTAMPTZ,
    lease_until TIMESTAMPTZ,
    owner       TEXT,
    last_error  TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at     TIMESTAMPTZ,
    CHECK (
        (state = 'pending' AND next_run_at IS NOT NULL AND owner IS NULL AND lease_until IS NULL)
        OR (state = 'running' AND owner IS NOT NULL AND lease_until IS NOT NULL)
        OR (state = 'dead' AND owner IS NULL AND lease_until IS NULL)
        OR (state = 'done' AND done_at IS NOT NULL AND owner IS NULL AND lease_until IS NULL)
    )
);

-- When each pending or running entry is due (its next run, its lease's end): what `take`
-- finds due entries by, oldest first.
CREATE INDEX IF NOT EXISTS {due_index} ON {table}
    ((CASE state WHEN 'pending' THEN next_run_at ELSE lease_until END))
    WHERE state IN ('pending', 'running');

-- When each done entry was done: what `purge_done` deletes by.
CREATE INDEX IF NOT EXISTS {done_index} ON {table} (done_at) WHERE state = 'done';

-- The dead entries, when each failed last: what `list --state dead` and the stats (the
-- dead count, kept off a scan of the whole table) read.
CREATE INDEX IF NOT EXISTS {dead_index} ON {table} (updated_at) WHERE state = 'dead';
