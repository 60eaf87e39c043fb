#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod inbox;
mod sql;
mod store;
mod table;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use inbox::{DEFAULT_INBOX_TABLE, InboxListener, PostgresInbox, PostgresInboxBuilder};
/// The sqlx version this crate is built on, for building the [`PgPool`](sqlx::PgPool).
pub use sqlx;
pub use store::{
    DEFAULT_OPERATION_TIMEOUT, Pooler, PostgresStore, PostgresStoreBuilder, schema_sql,
};
pub use table::{DEFAULT_TABLE, InvalidTableName, TableName};
