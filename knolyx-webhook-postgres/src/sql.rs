//! The SQL text, with the table name filled in.

use crate::table::TableName;

/// The migration, with `{table}` and `{index}` placeholders.
const MIGRATION: &str = include_str!("../migrations/0001_create.sql");

/// The migration for `table`.
pub(crate) fn schema(table: &TableName) -> String {
    MIGRATION
        .replace("{table}", &table.to_string())
        .replace("{index}", &table.index())
}

/// The statements of one store, prepared once per connection by sqlx.
#[derive(Debug)]
pub(crate) struct Queries {
    /// `$1` id, `$2` owner, `$3` lease in ms. One row: `claimed`, or the state
    /// (`in_progress`, `completed`) of the row version it did not take; no row only when
    /// the conflicting row was inserted after the statement's snapshot (a concurrent
    /// claim): then [`Queries::state`] tells.
    pub(crate) claim: String,
    /// `$1` id: the state of an unexpired row.
    pub(crate) state: String,
    /// `$1` id, `$2` owner, `$3` retention in ms.
    pub(crate) complete: String,
    /// `$1` id, `$2` owner.
    pub(crate) release: String,
    pub(crate) purge: String,
}

impl Queries {
    pub(crate) fn new(table: &TableName) -> Self {
        let t = table.to_string();
        // The database's clock (`now()`, the statement's start in autocommit), never the
        // application's: every replica then agrees on what has expired.
        //
        // `ON CONFLICT DO UPDATE` waits for a concurrent writer of the row, then locks and
        // checks the *latest* committed version, even one newer than the statement's
        // snapshot; it leaves the row locked when the check fails. A plain read of the row
        // would see the snapshot's older version instead: a completed row whose retention
        // expired, say, while another replica has just taken it over (a duplicate answered
        // while that replica's handler runs, lost if it fails). So `held` reads the row
        // `FOR UPDATE`: in READ COMMITTED that follows the row to its latest version, the
        // one the conflict check saw and this statement already holds locked (no wait, no
        // new lock), and answers its state, unexpired since the check failed. Still one
        // statement; a row inserted after the snapshot is not found by `held` at all.
        let claim = format!(
            "WITH claimed AS (
                INSERT INTO {t} AS d (id, state, owner, lease_expires_at)
                VALUES ($1, 'in_progress', $2, now() + $3::bigint * interval '1 millisecond')
                ON CONFLICT (id) DO UPDATE
                    SET state = 'in_progress',
                        owner = EXCLUDED.owner,
                        lease_expires_at = EXCLUDED.lease_expires_at,
                        retain_until = NULL,
                        updated_at = now()
                    WHERE (d.state = 'in_progress' AND d.lease_expires_at <= now())
                       OR (d.state = 'completed' AND d.retain_until <= now())
                RETURNING 1
            ), held AS (
                SELECT d.state FROM {t} AS d
                WHERE d.id = $1 AND NOT EXISTS (SELECT 1 FROM claimed)
                FOR UPDATE
            )
            SELECT 'claimed'::text AS outcome FROM claimed
            UNION ALL
            SELECT state FROM held"
        );
        let state = format!(
            "SELECT state FROM {t}
            WHERE id = $1 AND COALESCE(lease_expires_at, retain_until) > now()"
        );
        let owned = "id = $1 AND state = 'in_progress' AND owner = $2 AND lease_expires_at > now()";
        let complete = format!(
            "UPDATE {t}
            SET state = 'completed',
                owner = NULL,
                lease_expires_at = NULL,
                retain_until = now() + $3::bigint * interval '1 millisecond',
                updated_at = now()
            WHERE {owned}"
        );
        let release = format!("DELETE FROM {t} WHERE {owned}");
        let purge =
            format!("DELETE FROM {t} WHERE COALESCE(lease_expires_at, retain_until) <= now()");
        Self {
            claim,
            state,
            complete,
            release,
            purge,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_fills_in_the_table_and_index() {
        let sql = schema(&TableName::parse("app.deliveries").unwrap());
        assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "app"."deliveries" ("#));
        assert!(sql.contains(
            r#"CREATE INDEX IF NOT EXISTS "deliveries_expiry_idx" ON "app"."deliveries""#
        ));
        assert!(!sql.contains('{'));
    }
}
