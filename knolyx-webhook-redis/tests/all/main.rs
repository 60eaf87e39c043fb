//! Tests of the Redis store against a real server (`KNOLYX_TEST_REDIS_URL`), and against
//! private `redis-server` processes for the failure and round-trip tests, a private Redis
//! Cluster and a private Sentinel setup.

mod behaviour;
mod causes;
mod cluster;
mod conformance;
mod failure;
mod model;
mod sentinel;
mod support;
