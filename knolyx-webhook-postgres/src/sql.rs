//! The SQL text, with the table name filled in, and its two ways to the server: prepared
//! with bound parameters, or as one simple query with the parameters written in.

use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;

use crate::table::TableName;

/// The migration, with `{table}` and `{index}` placeholders.
const MIGRATION: &str = include_str!("../migrations/0001_create.sql");

/// The migration for `table`.
pub(crate) fn schema(table: &TableName) -> String {
    MIGRATION
        .replace("{table}", &table.to_string())
        .replace("{index}", &table.index())
}

/// A parameter of a statement, `$1`, `$2`… in its text.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg<'a> {
    Text(&'a str),
    Int(i64),
}

/// `sql` with `args` bound: a named statement, prepared once per connection and cached by
/// sqlx.
pub(crate) fn bind<'q>(sql: &'q str, args: &[Arg<'q>]) -> Query<'q, Postgres, PgArguments> {
    args.iter().fold(sqlx::query(sql), |query, arg| match *arg {
        Arg::Text(text) => query.bind(text),
        Arg::Int(n) => query.bind(n),
    })
}

/// `sql` with each `$n` replaced by `args[n - 1]` written as a literal, in one pass (a
/// literal holding `$2` is never rewritten), for the simple query protocol: one message, no
/// statement left on the server. The statements of this crate hold no `$` but their
/// parameters.
///
/// Fails (without panicking) on a text holding NUL, which PostgreSQL text cannot hold (bound,
/// the server refuses it too), and on a `$n` without its argument (a bug).
pub(crate) fn inline(sql: &str, args: &[Arg<'_>]) -> Result<String, sqlx::Error> {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        let arg = rest[at + 1..at + 1 + digits]
            .parse::<usize>()
            .ok()
            .and_then(|n| args.get(n.checked_sub(1)?))
            .ok_or_else(|| encode_error(format!("no argument for {:?}", &rest[at..])))?;
        match *arg {
            Arg::Text(text) => push_literal(&mut out, text)?,
            Arg::Int(n) => out.push_str(&n.to_string()),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Appends `text` as an escape string literal, `E'…'` with every `'` and `\` doubled, as
/// libpq's `PQescapeLiteral` writes one: its value is `text` whatever the server's
/// `standard_conforming_strings`, and with the UTF-8 client encoding that sqlx sets no
/// byte of a multibyte character can end it.
fn push_literal(out: &mut String, text: &str) -> Result<(), sqlx::Error> {
    if text.contains('\0') {
        return Err(encode_error(
            "a NUL character cannot be stored in PostgreSQL text".to_owned(),
        ));
    }
    out.push_str("E'");
    for c in text.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    Ok(())
}

fn encode_error(message: String) -> sqlx::Error {
    sqlx::Error::Encode(message.into())
}

/// The statements of one store.
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
    fn inline_writes_each_parameter_once_as_a_literal() {
        let sql = inline(
            "SELECT $1, $2::bigint, $1 WHERE $3 = x",
            &[Arg::Text("a$2b"), Arg::Int(-7), Arg::Text("")],
        )
        .unwrap();
        assert_eq!(sql, "SELECT E'a$2b', -7::bigint, E'a$2b' WHERE E'' = x");
    }

    #[test]
    fn literals_double_quotes_and_backslashes() {
        let sql = inline("$1", &[Arg::Text(r"it's \'; DROP TABLE t; --")]).unwrap();
        assert_eq!(sql, r"E'it''s \\''; DROP TABLE t; --'");
        let sql = inline("$1", &[Arg::Text("é😀\n")]).unwrap();
        assert_eq!(sql, "E'é😀\n'");
    }

    #[test]
    fn inline_refuses_nul_and_missing_arguments_without_panicking() {
        for (sql, args) in [
            ("$1", &[Arg::Text("a\0b")][..]),
            ("$2", &[Arg::Text("a")][..]),
            ("$0", &[Arg::Text("a")][..]),
            ("$", &[][..]),
            ("$99999999999999999999999", &[][..]),
        ] {
            assert!(
                matches!(inline(sql, args), Err(sqlx::Error::Encode(_))),
                "{sql}"
            );
        }
    }

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
