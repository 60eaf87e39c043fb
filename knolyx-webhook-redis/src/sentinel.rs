//! The master behind Redis Sentinel, found again after a failover.
//!
//! The redis crate's [`SentinelClient`] finds the current master (asking the sentinels, then
//! checking with `ROLE` that the node is a master), but a [`ConnectionManager`] built on the
//! client it returns would reconnect to that address forever, even after the sentinels
//! promoted a replica. So the store keeps one multiplexed connection to the master it found,
//! and forgets it when an operation on it fails as unavailable (refused, dropped, `READONLY`
//! from a demoted master) or times out: the next operation asks the sentinels again.
//!
//! [`ConnectionManager`]: redis::aio::ConnectionManager

use std::sync::Mutex;

use redis::aio::MultiplexedConnection;
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, RedisResult};

/// The connection to the current master, and how to find the next one.
pub(crate) struct SentinelMaster {
    /// The connection in use and its generation (which connection an operation used, so
    /// that a late failure does not forget a newer connection).
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Held while asking the sentinels, so that concurrent operations ask once.
    client: tokio::sync::Mutex<(SentinelClient, u64)>,
    config: AsyncConnectionConfig,
}

impl SentinelMaster {
    pub(crate) fn new(client: SentinelClient, config: AsyncConnectionConfig) -> Self {
        Self {
            current: Mutex::new(None),
            client: tokio::sync::Mutex::new((client, 0)),
            config,
        }
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The connection to the master, found through the sentinels when there is none.
    pub(crate) async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let mut client = self.client.lock().await;
        // Another operation may have found it while this one waited.
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let master = client.0.async_get_client().await?;
        let conn = master
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        client.1 += 1;
        let found = (client.1, conn);
        *self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(found.clone());
        Ok(found)
    }

    /// Forgets connection `generation` (if it is still the current one): the next
    /// operation asks the sentinels for the master.
    pub(crate) fn forget(&self, generation: u64) {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
        }
    }
}
