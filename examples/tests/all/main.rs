//! Integration tests of the examples: one binary, one module per topic.

mod axum;
mod binaries;
mod replicas;
mod scenarios;
