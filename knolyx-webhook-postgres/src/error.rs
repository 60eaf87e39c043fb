//! How sqlx errors become [`StoreError`]s.

use std::time::Duration;

use knolyx_webhook_core::store::{StoreError, StoreErrorKind};

/// Maps a sqlx error to a store error of the right kind, keeping it as the source.
pub(crate) fn map(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            StoreError::new(
                StoreErrorKind::Refused,
                "postgres refused the connection (nothing listens there?)",
                Some(err.into()),
            )
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::unavailable(err),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // query_canceled: statement_timeout or a cancel request.
            // invalid_authorization_specification, invalid_password.
            Some("28000" | "28P01") => StoreError::new(
                StoreErrorKind::Auth,
                "postgres refused the credentials",
                Some(err.into()),
            ),
            // invalid_catalog_name (no such database), undefined_table (no migration),
            // duplicate/unknown prepared statement (a transaction-mode pooler).
            Some("3D000" | "42P01" | "42P05" | "26000") => StoreError::new(
                StoreErrorKind::Misconfigured,
                "postgres is not set up for this store (database, table, or a pooler that \
                 breaks prepared statements)",
                Some(err.into()),
            ),
            Some("57014") => StoreError::new(
                StoreErrorKind::Timeout,
                "postgres cancelled the statement",
                Some(err.into()),
            ),
            // connection_exception (08…), admin/crash shutdown, cannot_connect_now,
            // too_many_connections, read_only_sql_transaction (a standby).
            Some(code)
                if code.starts_with("08")
                    || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "25006") =>
            {
                StoreError::unavailable(err)
            }
            _ => StoreError::backend(err),
        },
        _ => StoreError::backend(err),
    }
}

/// Whether `err` is how a transaction pooler answers a prepared statement that the current
/// server connection does not have, or has from another client: `42P05` (a Parse of a name
/// that exists), `26000` (a Bind of a name that does not), `08P01` (a Bind whose parameter
/// count is that of another statement of the same name). In each case nothing ran.
pub(crate) fn is_pooler_sign(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("42P05" | "26000" | "08P01"))
        }
        _ => false,
    }
}

/// Whether `err` was mapped from a [pooler sign](is_pooler_sign).
pub(crate) fn source_is_pooler_sign(err: &StoreError) -> bool {
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<sqlx::Error>())
        .is_some_and(is_pooler_sign)
}

/// Runs `fut` within `limit`, mapping its error and a timeout.
pub(crate) async fn within<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    knolyx_webhook_core::store::within(limit, fut, map).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_unavailable_and_keep_their_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let err = map(sqlx::Error::Io(io));
        assert_eq!(err.kind(), StoreErrorKind::Unavailable);
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(
            map(sqlx::Error::PoolTimedOut).kind(),
            StoreErrorKind::Unavailable
        );
    }

    #[test]
    fn other_errors_are_backend_errors() {
        assert_eq!(
            map(sqlx::Error::RowNotFound).kind(),
            StoreErrorKind::Backend
        );
    }
}
