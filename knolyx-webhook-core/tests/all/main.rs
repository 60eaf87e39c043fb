//! Integration tests of knolyx-webhook-core: one test binary, one module per topic.

mod bad_inputs;
mod corpus;
mod fixtures;
mod fuzz_checks;
mod memory_capacity;
mod metrics;
mod model;
mod pipeline_table;
mod shutdown;
mod stores;
mod support;
mod tracing_output;
