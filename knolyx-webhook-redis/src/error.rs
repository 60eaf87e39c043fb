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
    if matches!(
        err.kind(),
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
    ) {
        // Only a store on one server sees these (a cluster connection follows them): its
        // server is a cluster node after all.
        return StoreError::new(
            StoreErrorKind::Misconfigured,
            format!(
                "a Redis Cluster node answered {}: {CONFIGURE_CLUSTER}",
                err.code().unwrap_or("MOVED")
            ),
            Some(err.into()),
        );
    }
    let unavailable = err.is_io_error()
        || err.is_connection_dropped()
        || matches!(
            err.kind(),
            ErrorKind::ClusterConnectionNotFound
                // No sentinel names a master that is up (a failover under way, or a
                // wrong master name: the source says which).
                | ErrorKind::MasterNameNotFoundBySentinel
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

/// What to do about a cluster node behind a `redis://` URL.
const CONFIGURE_CLUSTER: &str = "a redis:// store cannot use a Redis Cluster (every key that \
    hashes to another node would fail): configure the store with \
    redis+cluster://[user:password@]host:port[,host:port…] (rediss+cluster:// for TLS), \
    listing the cluster's nodes as seeds";

/// The refusal of a `redis://` store whose server (at `server`, when known) is a cluster
/// node.
pub(crate) fn cluster_node(server: Option<&str>) -> StoreError {
    let at = server.map(|s| format!(" at {s}")).unwrap_or_default();
    StoreError::new(
        StoreErrorKind::Misconfigured,
        format!(
            "the Redis server{at} is a Redis Cluster node (INFO cluster: cluster_enabled:1); {CONFIGURE_CLUSTER}"
        ),
        None,
    )
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
    fn io_errors_are_unavailable_or_refused_and_keep_their_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let err = map(RedisError::from(io));
        assert_eq!(err.kind(), StoreErrorKind::Unavailable);
        assert!(std::error::Error::source(&err).is_some());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(map(RedisError::from(io)).kind(), StoreErrorKind::Refused);
    }

    #[test]
    fn io_timeouts_are_timeouts() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert_eq!(map(RedisError::from(io)).kind(), StoreErrorKind::Timeout);
    }

    #[test]
    fn moved_in_a_single_server_store_says_how_to_configure_a_cluster() {
        let err = RedisError::from((
            ErrorKind::Server(ServerErrorKind::Moved),
            "An error was signalled by the server",
            "3999 127.0.0.1:6381".to_owned(),
        ));
        let err = map(err);
        assert_eq!(err.kind(), StoreErrorKind::Misconfigured);
        assert!(err.to_string().contains("redis+cluster://"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn a_master_no_sentinel_names_is_unavailable() {
        let err = RedisError::from((ErrorKind::MasterNameNotFoundBySentinel, "not found"));
        assert_eq!(map(err).kind(), StoreErrorKind::Unavailable);
    }

    #[test]
    fn other_errors_are_backend_errors() {
        let err = RedisError::from((ErrorKind::UnexpectedReturnType, "what"));
        assert_eq!(map(err).kind(), StoreErrorKind::Backend);
    }
}
