#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod scripts;
mod sentinel;
mod store;
mod target;

/// The redis version this crate is built on.
pub use redis;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub use store::{
    DEFAULT_CONNECTION_TIMEOUT, DEFAULT_KEY_PREFIX, DEFAULT_OPERATION_TIMEOUT,
    DEFAULT_SENTINEL_REPLICA_WAIT, RedisStore, RedisStoreBuilder, URL_SCHEMES, is_redis_url,
};
