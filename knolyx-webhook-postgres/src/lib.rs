#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod sql;
mod store;
mod table;

/// The sqlx version this crate is built on, for building the [`PgPool`](sqlx::PgPool).
pub use sqlx;
pub use store::{DEFAULT_OPERATION_TIMEOUT, PostgresStore, PostgresStoreBuilder, schema_sql};
pub use table::{DEFAULT_TABLE, InvalidTableName, TableName};
