//! Integration tests of the examples: one binary, one module per topic.

mod axum;
mod binaries;
mod deploy;
mod faults;
mod inbox;
mod leaks;
mod metrics;
mod operator;
mod ops;
mod outage;
mod replicas;
mod scenarios;
mod stall;
mod support;
