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

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `sql` with each `$n` replaced by `args[n - 1]` written in, in one pass, for the simple
/// query protocol: one message, no statement left on the server. The statements of this
/// crate hold no `$` but their parameters.
///
/// A text is written as `(convert_from(decode('<hex of its UTF-8>', 'hex'), 'UTF8') COLLATE
/// "default")`: ASCII
/// letters, digits and punctuation of ours only, so no quoting can go wrong, whatever the
/// session's `standard_conforming_strings`, `backslash_quote` or client encoding (an escaped
/// literal `E'…'` does not survive a client encoding such as SJIS, where a multibyte
/// character may end in `\`). The server refuses what it refuses bound: a NUL, a character
/// the database's encoding lacks. Fails (without panicking) on a `$n` without its argument
/// (a bug).
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
            .ok_or_else(|| {
                sqlx::Error::Encode(format!("no argument for {:?}", &rest[at..]).into())
            })?;
        match *arg {
            Arg::Text(text) => {
                out.push_str("(convert_from(decode('");
                push_hex(&mut out, text.as_bytes());
                // `convert_from` answers in the collation of its `name` argument, "C": the
                // column's, "default", lets `id = …` use the primary key's index.
                out.push_str("', 'hex'), 'UTF8') COLLATE \"default\")");
            }
            Arg::Int(n) => out.push_str(&n.to_string()),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    Ok(out)
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
    /// `$1` id: `in_progress:<ms left>` or `completed:<ms left>`, no row when absent.
    pub(crate) inspect: String,
    /// `$1` id: deletes it when in progress, whoever owns it.
    pub(crate) force_release: String,
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
        let inspect = format!(
            "SELECT state || ':' || GREATEST(0, ceil(extract(epoch FROM
                COALESCE(lease_expires_at, retain_until) - now()) * 1000))::bigint::text
            FROM {t}
            WHERE id = $1 AND COALESCE(lease_expires_at, retain_until) > now()"
        );
        let force_release = format!(
            "DELETE FROM {t} WHERE id = $1 AND state = 'in_progress' AND lease_expires_at > now()"
        );
        Self {
            claim,
            state,
            complete,
            release,
            purge,
            inspect,
            force_release,
        }
    }
}

/// Appends `bytes` as lowercase hex digits.
fn push_hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
}

/// `bytes` as lowercase hex digits (for `decode($n, 'hex')`: the same text in both
/// protocols, whatever the session's `bytea_output`).
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// The bytes of hex digits (as `encode(…, 'hex')` writes them); `None` for anything else.
pub(crate) fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let bytes = hex.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let bytes = b"{\"id\":\"\xc3\xa9\"}\x00\xff";
        assert_eq!(hex_decode(&hex_encode(bytes)).as_deref(), Some(&bytes[..]));
        for bad in ["a", "zz", "0g", "é"] {
            assert_eq!(hex_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn inline_writes_each_parameter_once() {
        let sql = inline(
            "SELECT $1, $2::bigint, $1 WHERE $3 = x",
            &[Arg::Text("a$2"), Arg::Int(-7), Arg::Text("")],
        )
        .unwrap();
        let a = r#"(convert_from(decode('612432', 'hex'), 'UTF8') COLLATE "default")"#;
        let empty = r#"(convert_from(decode('', 'hex'), 'UTF8') COLLATE "default")"#;
        assert_eq!(
            sql,
            format!("SELECT {a}, -7::bigint, {a} WHERE {empty} = x")
        );
    }

    #[test]
    fn texts_are_written_in_hex_digits_only() {
        let hostile = "it's \\'; DROP TABLE t; -- é😀\0$$";
        let sql = inline("$1", &[Arg::Text(hostile)]).unwrap();
        let (start, end) = (
            "(convert_from(decode('",
            r#"', 'hex'), 'UTF8') COLLATE "default")"#,
        );
        assert!(sql.starts_with(start) && sql.ends_with(end), "{sql}");
        let hex = &sql[start.len()..sql.len() - end.len()];
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{sql}");
        assert_eq!(hex.len(), 2 * hostile.len());
    }

    #[test]
    fn inline_refuses_missing_arguments_without_panicking() {
        for sql in ["$2", "$0", "$", "$99999999999999999999999"] {
            assert!(
                matches!(inline(sql, &[Arg::Text("a")]), Err(sqlx::Error::Encode(_))),
                "{sql}"
            );
        }
    }

    /// Each statement, its parameters written in, finds its row by the primary key's index
    /// (`enable_seqscan = off`: a plan that still scans the table cannot use the index; a
    /// text of `convert_from`'s own collation could not).
    #[tokio::test]
    #[ignore = "needs KNOLYX_TEST_DATABASE_URL (README: Running the store tests)"]
    async fn written_in_parameters_use_the_index() {
        use sqlx::{Connection, Executor, Row};
        let Some(url) = knolyx_webhook_core::testing::service_url("KNOLYX_TEST_DATABASE_URL")
        else {
            return;
        };
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let table = TableName::parse(&format!(
            "knolyx_test_plan_{}",
            knolyx_webhook_core::store::OwnerToken::generate()
        ))
        .unwrap();
        let queries = Queries::new(&table);
        let (id, owner) = (Arg::Text("some-id"), Arg::Text("some-owner"));
        let cases = [
            (&queries.claim, vec![id, owner, Arg::Int(60_000)]),
            (&queries.state, vec![id]),
            (&queries.complete, vec![id, owner, Arg::Int(60_000)]),
            (&queries.release, vec![id, owner]),
        ];
        conn.execute(sqlx::raw_sql(&schema(&table))).await.unwrap();
        conn.execute("SET enable_seqscan = off").await.unwrap();
        for (sql, args) in cases {
            let explain = format!("EXPLAIN {}", inline(sql, &args).unwrap());
            let rows = conn.fetch_all(sqlx::raw_sql(&explain)).await.unwrap();
            let plan: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            let plan = plan.join("\n");
            assert!(!plan.contains("Seq Scan"), "{sql}\n{plan}");
        }
        conn.execute(sqlx::raw_sql(&format!("DROP TABLE {table}")))
            .await
            .unwrap();
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
