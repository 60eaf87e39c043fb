//! How Redis errors become [`StoreError`]s.

use std::time::Duration;

use knolyx_webhook_core::store::{StoreError, StoreErrorKind};
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// Maps a Redis error to a store error of the right kind, keeping it as the source.
pub(crate) fn map(err: RedisError) -> StoreError {
    if err.is_timeout() {
        return StoreError::new(
            StoreErrorKind::Timeout,
            "redis did not answer in time",
            Some(err.into()),
        );
    }
    if err.code() == Some("OOM") {
        return StoreError::new(
            StoreErrorKind::Full,
            "redis is out of memory (maxmemory reached)",
            Some(err.into()),
        );
    }
    if err.is_connection_refusal() {
        return StoreError::new(
            StoreErrorKind::Refused,
            "redis refused the connection (nothing listens there?)",
            Some(err.into()),
        );
    }
    if matches!(err.code(), Some("NOAUTH" | "WRONGPASS"))
        || matches!(err.kind(), ErrorKind::AuthenticationFailed)
    {
        return StoreError::new(
            StoreErrorKind::Auth,
            "redis refused the credentials",
            Some(err.into()),
        );
    }
    if matches!(err.code(), Some("MOVED" | "ASK" | "CROSSSLOT")) {
        return StoreError::new(
            StoreErrorKind::Misconfigured,
            "redis answered with a cluster redirection: this is a Redis Cluster node, \
             configure the store for a cluster",
            Some(err.into()),
        );
    }
    let unavailable = err.is_io_error()
        || err.is_connection_dropped()
        || matches!(
            err.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        );
    if unavailable {
        StoreError::unavailable(err)
    } else {
        StoreError::backend(err)
    }
}

/// Runs `fut` within `limit`, mapping its error and a timeout.
pub(crate) async fn within<T>(
    limit: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    knolyx_webhook_core::store::within(limit, fut, map).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unavailable_and_keep_their_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = map(RedisError::from(io));
        assert_eq!(err.kind(), StoreErrorKind::Unavailable);
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn io_timeouts_are_timeouts() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert_eq!(map(RedisError::from(io)).kind(), StoreErrorKind::Timeout);
    }

    #[test]
    fn other_errors_are_backend_errors() {
        let err = RedisError::from((ErrorKind::UnexpectedReturnType, "what"));
        assert_eq!(map(err).kind(), StoreErrorKind::Backend);
    }
}
