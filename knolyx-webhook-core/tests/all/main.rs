//! Integration tests of knolyx-webhook-core: one test binary, one module per topic.

mod bad_inputs;
mod fixtures;
mod pipeline_table;
mod stores;
mod support;
mod tracing_output;
