#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod sql;
mod store;
mod table;

pub use store::{DEFAULT_OPERATION_TIMEOUT, PostgresStore, PostgresStoreBuilder, schema_sql};
pub use table::{DEFAULT_TABLE, InvalidTableName, TableName};
